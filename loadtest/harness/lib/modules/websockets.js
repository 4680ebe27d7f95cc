// Shim of k6/websockets on the npm ws client, following k6's implementation where it is visible
// to a script: event order (error before close), which closes raise an error event, the `code` of
// close events, messages after close() being dropped, and the ws_* built-in metrics.
import WS from 'ws';
import { performance } from 'node:perf_hooks';
import { state } from '../state.js';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const EVENTS = ['open', 'message', 'error', 'close', 'ping', 'pong'];
// gorilla/websocket's names, which k6's error events carry.
const CLOSE_NAMES = {
  1000: 'normal', 1001: 'going away', 1002: 'protocol error', 1003: 'unsupported data',
  1005: 'no status', 1007: 'invalid payload data', 1008: 'policy violation', 1009: 'message too big',
  1010: 'mandatory extension missing', 1011: 'internal server error', 1012: 'service restart',
  1013: 'try again later', 1015: 'TLS handshake',
};

export class WebSocket {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;
  CONNECTING = CONNECTING;
  OPEN = OPEN;
  CLOSING = CLOSING;
  CLOSED = CLOSED;

  #ws;
  #iteration;
  #finish;
  #tags;
  #state = CONNECTING;
  #on = {};
  #listeners = Object.fromEntries(EVENTS.map((e) => [e, []]));
  #binaryType = 'blob';
  #closeCode = 0;
  #connectError = null;
  #opened = 0;
  #pings = new Map();
  #pingCount = 0;

  constructor(url, protocols, params = {}) {
    let u;
    try {
      u = new URL(String(url));
    } catch (e) {
      throw new Error(`WebSocket requires valid url, but got ${JSON.stringify(String(url))}`);
    }
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
      throw new Error(`WebSocket requires url with scheme ws or wss, but got ${JSON.stringify(u.protocol.slice(0, -1))}`);
    }
    this.url = String(url);
    this.#iteration = state.iteration;
    this.#finish = state.track(() => this.#abandon());
    this.#tags = { url: this.url, name: this.url, ...params.tags };
    const started = performance.now();
    const ws = new WS(this.url, protocols ?? [], {
      headers: params.headers,
      perMessageDeflate: params.compression === 'deflate',
      handshakeTimeout: 60_000,
    });
    this.#ws = ws;
    const connected = (status) => {
      const tags = status ? { ...this.#tags, status: String(status) } : this.#tags;
      state.push('ws_sessions', 1, tags);
      state.push('ws_connecting', performance.now() - started, tags);
    };
    ws.on('upgrade', (res) => {
      this.#tags.status = String(res.statusCode);
      connected(res.statusCode);
    });
    ws.on('unexpected-response', (req, res) => {
      connected(res.statusCode);
      this.#connectError = 'websocket: bad handshake';
      req.destroy();
      this.#closed(0, '');
    });
    ws.on('open', () => {
      this.#opened = performance.now();
      this.#state = OPEN;
      this.#dispatch('open', {});
    });
    ws.on('message', (data, isBinary) => {
      if (this.#state !== OPEN) return;
      state.push('ws_msgs_received', 1, this.#tags);
      this.#dispatch('message', { data: this.#decode(data, isBinary), origin: this.url });
    });
    ws.on('ping', () => this.#dispatch('ping', {}));
    ws.on('pong', (data) => {
      const sent = this.#pings.get(data.toString());
      if (sent !== undefined) state.push('ws_ping', performance.now() - sent, this.#tags);
      this.#dispatch('pong', {});
    });
    ws.on('error', (err) => {
      if (this.#state === CONNECTING && this.#connectError === null) {
        connected(0);
        this.#connectError = err.message;
      }
    });
    ws.on('close', (code, reason) => this.#closed(code, reason.toString()));
  }

  get readyState() { return this.#state; }
  get bufferedAmount() { return this.#ws.bufferedAmount; }
  get protocol() { return this.#ws.protocol; }
  get extensions() { return this.#ws.extensions; }
  get binaryType() { return this.#binaryType; }
  set binaryType(t) {
    if (t !== 'blob' && t !== 'arraybuffer') throw new Error(`unknown binaryType ${t}, the supported ones are "blob" and "arraybuffer"`);
    this.#binaryType = t;
  }

  get onopen() { return this.#on.open ?? null; }
  set onopen(fn) { this.#setOn('open', fn); }
  get onmessage() { return this.#on.message ?? null; }
  set onmessage(fn) { this.#setOn('message', fn); }
  get onerror() { return this.#on.error ?? null; }
  set onerror(fn) { this.#setOn('error', fn); }
  get onclose() { return this.#on.close ?? null; }
  set onclose(fn) { this.#setOn('close', fn); }
  get onping() { return this.#on.ping ?? null; }
  set onping(fn) { this.#setOn('ping', fn); }
  get onpong() { return this.#on.pong ?? null; }
  set onpong(fn) { this.#setOn('pong', fn); }

  send(data) {
    this.#assertOpen();
    let payload = data;
    if (data instanceof ArrayBuffer) payload = Buffer.from(data);
    else if (ArrayBuffer.isView(data)) payload = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    else if (typeof data !== 'string') throw new Error(`unsupported send type ${typeof data}`);
    this.#ws.send(payload, (err) => {
      if (!err) state.push('ws_msgs_sent', 1, this.#tags);
    });
  }

  ping() {
    this.#assertOpen();
    const id = String(this.#pingCount++);
    this.#pings.set(id, performance.now());
    this.#ws.ping(id);
  }

  close(code, reason = '') {
    if (this.#state === CLOSED || this.#state === CLOSING) return;
    const c = code === undefined || code === 0 ? 1000 : code;
    if (c !== 1000 && (c < 3000 || c > 4999)) {
      throw new Error(`InvalidAccessError: Failed to execute 'close' on 'WebSocket': The close code must be either 1000, or between 3000 and 4999. ${c} is neither`);
    }
    if (Buffer.byteLength(reason) > 123) {
      throw new Error("SyntaxError: Failed to execute 'close' on 'WebSocket': The message must not be greater than 123 bytes");
    }
    this.#state = CLOSING;
    this.#closeCode = c;
    this.#ws.close(c, reason);
  }

  addEventListener(type, handler) {
    if (typeof handler !== 'function') throw new Error(`handler for event type "${type}" isn't a callable function`);
    if (!this.#listeners[type]) {
      console.warn(`can't add event handler: unknown event "${type}"`);
      return;
    }
    this.#listeners[type].push(handler);
  }

  #setOn(type, fn) {
    if (fn === null || fn === undefined) delete this.#on[type];
    else if (typeof fn !== 'function') throw new Error(`a value for 'on${type}' should be callable`);
    else this.#on[type] = fn;
  }

  #assertOpen() {
    if (this.#state !== OPEN) throw new Error('InvalidStateError');
  }

  #decode(data, isBinary) {
    if (!isBinary) return data.toString();
    const ab = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    return this.#binaryType === 'arraybuffer' ? ab : new Blob([ab]);
  }

  #dispatch(type, fields) {
    if (!state.owned(this.#iteration)) return;
    const event = { type, target: this, timestamp: Date.now(), ...fields };
    const handlers = this.#on[type] ? [this.#on[type], ...this.#listeners[type]] : this.#listeners[type];
    for (const h of handlers) state.invoke(h, this, event);
  }

  /**
   * closed reports the end of the connection as k6 does: a failed connection gets an error event
   * then a close event without code; a close frame other than 1000/1001 gets an error event; a
   * connection lost without a close frame (1006) gets only a close event.
   */
  #closed(code, reason) {
    if (this.#state === CLOSED) return;
    const wasConnecting = this.#state === CONNECTING;
    this.#state = CLOSED;
    if (this.#opened) state.push('ws_session_duration', performance.now() - this.#opened, this.#tags);
    if (wasConnecting) {
      this.#dispatch('error', { error: this.#connectError ?? 'connection failed' });
      this.#dispatch('close', { reason: '' });
    } else {
      if (code !== 1006) this.#closeCode = code;
      if (code !== 1006 && code !== 1000 && code !== 1001) {
        const name = CLOSE_NAMES[code] ? ` (${CLOSE_NAMES[code]})` : '';
        this.#dispatch('error', { error: `websocket: close ${code}${name}${reason ? `: ${reason}` : ''}` });
      }
      this.#dispatch('close', this.#closeCode ? { code: this.#closeCode, reason } : { reason });
    }
    this.#finish();
  }

  /** abandon ends the connection of an interrupted iteration; no event reaches the script. */
  #abandon() {
    if (this.#state === OPEN) this.#ws.close(1000);
    else if (this.#state !== CLOSED) this.#ws.terminate();
    this.#state = CLOSED;
  }
}

export default { WebSocket };
