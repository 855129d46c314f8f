// Order rush ("한정 수량 주문"): a fresh product with a small stock S, many buyers each ordering one
// unit at once and paying for it. Nothing may be oversold: at most S orders are accepted, every
// other buyer gets 400 INSUFFICIENT_STOCK, every accepted order is paid, and at the end the
// server shows exactly max(S - N, 0) left.
//
//   k6 run -e TOKENS=/abs/tokens.csv -e ADMIN_TOKEN=... -e BUYERS=200 -e STOCK=20 order-rush.js
//
// Environment (all optional except TOKENS' file and ADMIN_TOKEN):
//   BASE_URL     server (default http://127.0.0.1:8080)
//   TOKENS       token CSV of `jupang token --users 1..N --out tokens.csv` (default tokens.csv)
//   ADMIN_TOKEN  an inventory_manager or ops_admin token: creates the product in setup()
//   BUYERS       N, buyers (default: every row of TOKENS, at most 1000)
//   STOCK        S, units of the product (default 20)
//   PRICE        unit price in KRW (default 10000); buyers need that much in their wallet
//                (`jupang seed --users N --balance B` gives B to each, default 1,000,000)
//   CHARGE       if > 0, each buyer first charges this amount into its wallet (default 0)
//   VUS          concurrent buyers (default 50)
//   P95_MS       threshold on p(95) of the order and payment requests (default 1000)
//   SETTLE_MS    how long teardown waits for the stock counters to settle (default 5000)

import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import {
  API, envInt, loadTokens, userParams, errorCode, field, withRetries, createProduct, productDetail, newRunId, idemKey,
} from './lib/jupang.js';

const tokens = loadTokens();
const BUYERS = envInt('BUYERS', Math.min(tokens.length, 1000));
const STOCK = envInt('STOCK', 20);
const PRICE = envInt('PRICE', 10000);
const CHARGE = envInt('CHARGE', 0);
const VUS = envInt('VUS', 50);
const P95_MS = envInt('P95_MS', 1000);
if (BUYERS < 1 || BUYERS > tokens.length) {
  throw new Error(`BUYERS=${BUYERS}: the token file has ${tokens.length} rows (jupang token --users 1..${BUYERS})`);
}
if (STOCK < 0) throw new Error('STOCK must be at least 0');

const ordersCreated = new Counter('orders_created');
const outOfStock = new Counter('orders_out_of_stock');
const ordersOther = new Counter('orders_other');
const paid = new Counter('payments_paid');
const paymentsOther = new Counter('payments_other');
const retried = new Counter('retried');
/** Share of accepted orders that were paid (must be 1: stock reserved means payable). */
const paymentOk = new Rate('payment_ok');
const verdict = new Rate('verdict_ok');

export const options = {
  scenarios: {
    order_rush: { executor: 'shared-iterations', vus: Math.min(VUS, BUYERS), iterations: BUYERS, maxDuration: '30m' },
  },
  thresholds: {
    'http_req_duration{name:POST /orders}': [`p(95)<${P95_MS}`],
    'http_req_duration{name:POST /orders/{id}/payment}': [`p(95)<${P95_MS}`],
    checks: ['rate==1'],
    // No oversell: never more accepted orders (or payments) than units.
    orders_created: [`count<=${STOCK}`],
    payments_paid: [`count<=${STOCK}`],
    payment_ok: ['rate==1'],
    // The server's stock at the end is exactly what was left (recorded by teardown).
    verdict_ok: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  const { productId, optionId } = createProduct({ name: `k6 order rush ${new Date().toISOString()}`, stock: STOCK, price: PRICE });
  console.log(`order rush: product ${productId} option ${optionId}, stock ${STOCK}, ${BUYERS} buyers at ${PRICE} KRW`);
  return { productId, optionId, runId: newRunId() };
}

export default function (data) {
  const index = exec.scenario.iterationInTest;
  const buyer = tokens[index];
  const onRetry = () => retried.add(1);

  if (CHARGE > 0) {
    const res = http.post(`${API}/users/${buyer.user_id}/balance/charge`, JSON.stringify({ amount: CHARGE }),
      userParams(buyer, 'POST /users/{id}/balance/charge', { headers: { 'Idempotency-Key': idemKey(data.runId, 'charge', index) } }));
    check(res, { 'charge: 200': (r) => r.status === 200 });
  }

  // One unit each; the key makes a retried request safe (no second order).
  const orderParams = userParams(buyer, 'POST /orders', {
    headers: { 'Idempotency-Key': idemKey(data.runId, 'order', index) },
    responseCallback: http.expectedStatuses(201, 400),
  });
  const orderBody = JSON.stringify({ user_id: buyer.user_id, items: [{ product_option_id: data.optionId, quantity: 1 }] });
  const order = withRetries(() => http.post(`${API}/orders`, orderBody, orderParams), onRetry);
  const code = errorCode(order);
  check(order, {
    'order: 201 PENDING, or 400 INSUFFICIENT_STOCK': (r) =>
      (r.status === 201 && field(r, 'status') === 'PENDING') || (r.status === 400 && code === 'INSUFFICIENT_STOCK'),
  });
  if (order.status !== 201) {
    if (code === 'INSUFFICIENT_STOCK') outOfStock.add(1);
    else ordersOther.add(1, { status: String(order.status), code: String(code) });
    return;
  }
  ordersCreated.add(1);

  const orderId = order.json('order_id');
  const payParams = userParams(buyer, 'POST /orders/{id}/payment', { headers: { 'Idempotency-Key': idemKey(data.runId, 'pay', index) } });
  const pay = withRetries(() => http.post(`${API}/orders/${orderId}/payment`, JSON.stringify({ user_id: buyer.user_id }), payParams), onRetry);
  const ok = check(pay, {
    'payment: 200 PAID': (r) => r.status === 200 && field(r, 'status') === 'PAID',
  });
  paymentOk.add(ok);
  if (ok) paid.add(1);
  else paymentsOther.add(1, { status: String(pay.status), code: String(errorCode(pay)) });
}

export function teardown(data) {
  // Payment confirms stock in Postgres at once; the wait only covers a reader that lags.
  const expected = Math.max(STOCK - BUYERS, 0);
  const deadline = Date.now() + envInt('SETTLE_MS', 5000);
  let option = productDetail(data.productId).options[0];
  while (option.available !== expected && Date.now() < deadline) {
    sleep(0.2);
    option = productDetail(data.productId).options[0];
  }
  console.log(`product ${data.productId}: option ${option.id} available ${option.available} (${option.stock_status}); expected max(${STOCK} - ${BUYERS}, 0) = ${expected}`);
  const ok = check(option, {
    'server: available == max(S - N, 0)': (o) => o.available === expected,
    'server: available >= 0': (o) => o.available >= 0,
  });
  verdict.add(ok);
}
