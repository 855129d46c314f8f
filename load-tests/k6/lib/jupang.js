// Shared pieces of the Jupang k6 scenarios: configuration from the environment, the token CSV
// written by `jupang token --users A..B --out tokens.csv`, admin calls used by setup(), and the
// error-code helpers. Paths, fields and codes follow the contract (api.md).

import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { fail, sleep } from 'k6';

/** Base URL of the server, without a trailing slash (`BASE_URL`, default http://127.0.0.1:8080). */
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
/** The API prefix: `/api` (the contract serves the same routes under `/api/v1`). */
export const API = `${BASE_URL}${__ENV.API_PREFIX || '/api'}`;

/** An integer from the environment, or `def` when unset. Stops the run on a malformed value. */
export function envInt(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v)) throw new Error(`${name} must be an integer, got "${raw}"`);
  return v;
}

/** A number (e.g. a ratio) from the environment, or `def` when unset. */
export function envFloat(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v)) throw new Error(`${name} must be a number, got "${raw}"`);
  return v;
}

/**
 * The customers' tokens, `[{user_id, token}]`, read once and shared by every VU. The file is the
 * CSV of `jupang token --users A..B --out tokens.csv`: a `user_id,token` header, then one line
 * per user. `TOKENS` is its path: absolute, or relative to the working directory (k6 passes the
 * shell's `PWD` in `__ENV`; without it, relative to `load-tests/k6/`).
 * Must be called in the init context (top level of a script).
 */
export function loadTokens() {
  const path = __ENV.TOKENS || 'tokens.csv';
  return new SharedArray('tokens', () => {
    const lines = open(resolvePath(path)).split(/\r?\n/).filter((l) => l.trim() !== '');
    if (lines.length < 2 || lines[0].trim() !== 'user_id,token') {
      throw new Error(`${path}: expected a "user_id,token" header and at least one line (jupang token --users A..B --out ${path})`);
    }
    return lines.slice(1).map((line, i) => {
      const [id, token] = line.split(',');
      const userId = Number(id);
      if (!Number.isInteger(userId) || !token) throw new Error(`${path}:${i + 2}: expected user_id,token`);
      return { user_id: userId, token: token.trim() };
    });
  });
}

/**
 * An absolute location for `open()`. k6 resolves a relative `open()` path from the entry
 * script today and plans to resolve it from the calling module; neither is what a person
 * typing `-e TOKENS=tokens.csv` expects, so relative paths are taken from the working directory.
 */
function resolvePath(path) {
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path) || path.startsWith('file://')) return path;
  if (__ENV.PWD) return `${__ENV.PWD.replace(/\/+$/, '')}/${path}`;
  return import.meta.resolve(`../${path}`);
}

/** Request parameters for a customer (`person` = one row of the token CSV). */
export function userParams(person, name, extra = {}) {
  const params = {
    headers: { Authorization: `Bearer ${person.token}`, 'Content-Type': 'application/json', ...(extra.headers || {}) },
    tags: { name, ...(extra.tags || {}) },
  };
  // Only when given: an explicit `undefined` callback would keep k6 from judging the answer at all.
  if (extra.responseCallback) params.responseCallback = extra.responseCallback;
  return params;
}

/** Request parameters for the admin token (`ADMIN_TOKEN`; stops the run when it is missing). */
export function adminParams(name) {
  const token = __ENV.ADMIN_TOKEN;
  if (!token) fail('ADMIN_TOKEN is required: jupang token --user 1 --role ops_admin');
  return { headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, tags: { name } };
}

/** The stable error `code` of a JSON error body, or undefined for a success or a non-JSON body. */
export function errorCode(res) {
  if (res.status < 400) return undefined;
  try {
    return res.json('code');
  } catch (_) {
    return undefined;
  }
}

/** A field of a JSON body, or undefined when the body is not JSON. */
export function field(res, path) {
  try {
    return res.json(path);
  } catch (_) {
    return undefined;
  }
}

/**
 * Sends a request, and sends it again (up to `MAX_RETRIES` times, default 3) when the contract
 * says to: 409 `CONCURRENCY_CONFLICT` (the V1 optimistic strategy gave up) and 503
 * `OVERLOADED` / `TIMEOUT` (after `Retry-After`, capped at 2 s), as a real client would.
 * `onRetry` is called once per retry so scripts can count them; `first` is an answer already
 * received (e.g. from `http.batch`), so only the retries are sent.
 */
export function withRetries(send, onRetry, first) {
  const max = envInt('MAX_RETRIES', 3);
  let res = first || send();
  for (let i = 0; i < max; i++) {
    const code = errorCode(res);
    const retryable = (res.status === 409 && code === 'CONCURRENCY_CONFLICT') || (res.status === 503 && (code === 'OVERLOADED' || code === 'TIMEOUT'));
    if (!retryable) break;
    if (onRetry) onRetry(code);
    const after = Number(res.headers['Retry-After']);
    sleep(Number.isFinite(after) && after > 0 ? Math.min(after, 2) : 0.05 * (i + 1));
    res = send();
  }
  return res;
}

/** Fails the run (from setup) with the response when an admin call did not answer `want`. */
function expectStatus(res, want, what) {
  if (res.status !== want) fail(`${what}: expected ${want}, got ${res.status} ${res.body}`);
  return res;
}

/**
 * Creates a fresh flash-sale coupon (`POST /admin/coupons`, `marketing_manager` or `ops_admin`)
 * whose issue window opened a minute ago and closes after `windowSecs`; returns its id.
 */
export function createCoupon({ name, quantity, market = 'KR', discount = 1000, windowSecs = 3600 }) {
  const now = Date.now();
  const body = {
    name,
    discount_type: 'FIXED',
    discount_value: discount,
    market,
    total_quantity: quantity,
    issue_starts_at: new Date(now - 60 * 1000).toISOString(),
    issue_ends_at: new Date(now + windowSecs * 1000).toISOString(),
    valid_days: 7,
  };
  const res = http.post(`${API}/admin/coupons`, JSON.stringify(body), adminParams('POST /admin/coupons'));
  return expectStatus(res, 201, 'create coupon').json('id');
}

/** `GET /admin/coupons/{id}/stats`: `{total_quantity, issued, persisted, used, remaining}`. */
export function couponStats(couponId) {
  const res = http.get(`${API}/admin/coupons/${couponId}/stats`, adminParams('GET /admin/coupons/{id}/stats'));
  return expectStatus(res, 200, 'coupon stats').json();
}

/**
 * Creates an on-sale product with one option of `stock` units at `price` KRW (and the same
 * number of US cents) through `POST /admin/products` (`inventory_manager` or `ops_admin`);
 * returns `{productId, optionId}`.
 */
export function createProduct({ name, stock, price, category = 'electronics' }) {
  const body = {
    name: { ko: `${name} (부하 테스트)`, en: `${name} (load test)` },
    description: { ko: '부하 테스트용 상품', en: 'Created by a k6 load test' },
    category,
    on_sale: true,
    options: [{ name: 'default', prices: { KRW: price, USD: price }, stock }],
  };
  const res = http.post(`${API}/admin/products`, JSON.stringify(body), adminParams('POST /admin/products'));
  expectStatus(res, 201, 'create product');
  return { productId: res.json('id'), optionId: res.json('options.0.id') };
}

/** `GET /products/{id}` (public): the product detail with its options' live `available`. */
export function productDetail(productId) {
  const res = http.get(`${API}/products/${productId}`, { tags: { name: 'GET /products/{id}' } });
  return expectStatus(res, 200, 'product detail').json();
}

/** A key unique to this run and iteration, for `Idempotency-Key`. */
export function idemKey(runId, ...parts) {
  return [runId, ...parts].join('-');
}

/** A short random id for one run (keeps idempotency keys of two runs apart). */
export function newRunId() {
  return `k6-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
}
