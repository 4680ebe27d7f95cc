// The k6/websockets and k6/http shims against a tiny in-process server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { fixture, harness } from '../fixtures/cli.js';

let server;
let env;
const hangClosed = [];

before(async () => {
  server = http.createServer((req, res) => {
    const status = /^\/status\/(\d+)$/.exec(req.url);
    if (status) {
      res.writeHead(Number(status[1]), { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
      return;
    }
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => res.end(`${req.headers['content-type']} ${body}`));
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.url === '/nowhere') {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      switch (req.url) {
        case '/echo': ws.on('message', (d) => ws.send(d.toString())); break;
        case '/policy': ws.send('bye'); ws.close(1008, 'too slow'); break;
        case '/away': ws.close(1001); break;
        case '/drop': setTimeout(() => ws.terminate(), 50); break;
        case '/ping': ws.ping(); ws.on('pong', () => {}); setTimeout(() => ws.close(), 100); break;
        case '/hang': ws.on('close', (code) => hangClosed.push(code)); break;
        default: ws.close(1011);
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  env = { WS_URL: `ws://127.0.0.1:${port}`, HTTP_URL: `http://127.0.0.1:${port}` };
});

after(() => new Promise((resolve) => server.close(resolve)));

test('the websockets and http shims behave as k6 does', async () => {
  const r = await harness([fixture('sockets.js')], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

test('gracefulStop interrupts an iteration whose socket stays open, closing the socket', async () => {
  const r = await harness([fixture('hang.js')], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  assert.deepEqual(hangClosed, [1000]);
});
