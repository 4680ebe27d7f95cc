// Shim of k6/http. Requests are synchronous for the VU, as in k6: the VU's thread blocks while the
// runner's main thread performs the request. Bodies are strings (what the scripts send).
import { state } from '../state.js';
import { parseDuration } from '../duration.js';

/** expectedStatuses builds a response callback: statuses or {min, max} ranges that count as success. */
export function expectedStatuses(...statuses) {
  return { ranges: statuses.map((s) => (typeof s === 'number' ? [s, s] : [s.min, s.max])) };
}

let defaultCallback = expectedStatuses({ min: 200, max: 399 });

export function setResponseCallback(callback) {
  defaultCallback = callback;
}

class Response {
  constructor(fields) {
    Object.assign(this, fields);
  }

  json(selector) {
    if (selector !== undefined) throw new Error('the harness does not support Response.json(selector)');
    return JSON.parse(this.body);
  }
}

export function request(method, url, body, params = {}) {
  if (body !== undefined && body !== null && typeof body !== 'string') {
    throw new Error('the harness sends string bodies only: JSON.stringify the body');
  }
  const r = state.call({
    kind: 'http',
    method,
    url: String(url),
    body: body ?? undefined,
    headers: params.headers ?? {},
    timeoutMs: parseDuration(params.timeout ?? '60s'),
  });
  const callback = params.responseCallback === undefined ? defaultCallback : params.responseCallback;
  const expected = callback === null ? undefined : callback.ranges.some(([lo, hi]) => r.status >= lo && r.status <= hi);
  const tags = { method, url: String(url), name: String(url), status: String(r.status), ...params.tags };
  if (expected !== undefined) tags.expected_response = String(expected);
  state.push('http_reqs', 1, tags);
  state.push('http_req_duration', r.durationMs, tags);
  if (expected !== undefined) state.push('http_req_failed', expected ? 0 : 1, tags);
  return new Response({
    status: r.status,
    body: r.body,
    headers: r.headers,
    error: r.error ?? '',
    url: String(url),
    timings: { duration: r.durationMs },
    request: { method, url: String(url), body },
  });
}

export const get = (url, params) => request('GET', url, null, params);
export const post = (url, body, params) => request('POST', url, body, params);
export const put = (url, body, params) => request('PUT', url, body, params);
export const patch = (url, body, params) => request('PATCH', url, body, params);
export const del = (url, body, params) => request('DELETE', url, body, params);

export default { request, get, post, put, patch, del, expectedStatuses, setResponseCallback };
