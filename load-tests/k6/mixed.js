// Mixed shopping traffic: people arriving at a steady rate, each doing one thing, in the
// proportions of a shop outside a flash sale:
//
//   60%  browse   GET /products (a random page, sort and category)
//   20%  detail   GET /products/{id}
//   10%  cart     POST /users/{id}/cart (1 unit), then GET /users/{id}/cart
//    6%  order    POST /orders (1 unit) and walk away: the order stays PENDING until it expires
//    4%  buy      POST /orders (1 unit), then POST /orders/{id}/payment
//
// Browsing reads the seeded demo catalog; cart, order and payment use a product created in
// setup() with a large stock, so the mix measures the paths rather than running out of stock.
//
//   k6 run -e TOKENS=/abs/tokens.csv -e ADMIN_TOKEN=... -e RATE=50 -e DURATION=60s mixed.js
//
// Environment (all optional except TOKENS' file and ADMIN_TOKEN):
//   BASE_URL     server (default http://127.0.0.1:8080)
//   TOKENS       token CSV of `jupang token --users 1..N --out tokens.csv` (default tokens.csv)
//   ADMIN_TOKEN  an inventory_manager or ops_admin token: creates the product in setup()
//   RATE         actions per second (default 20)
//   DURATION     how long (default 30s)
//   VUS          preallocated VUs (default 20); MAX_VUS the most k6 may add (default 100)
//   MIX          five weights browse,detail,cart,order,buy (default 60,20,10,6,4)
//   STOCK        units of the write-path product (default 1000000); PRICE its KRW price (default 1000)
//   P95_MS       threshold on p(95) of every request (default 500)

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { API, envInt, loadTokens, userParams, errorCode, field, withRetries, createProduct, productDetail, newRunId, idemKey } from './lib/jupang.js';

const tokens = loadTokens();
const RATE = envInt('RATE', 20);
const VUS = envInt('VUS', 20);
const P95_MS = envInt('P95_MS', 500);
const STOCK = envInt('STOCK', 1000000);
const PRICE = envInt('PRICE', 1000);
const MIX = (__ENV.MIX || '60,20,10,6,4').split(',').map(Number);
if (MIX.length !== 5 || MIX.some((w) => !Number.isFinite(w) || w < 0) || MIX.reduce((a, b) => a + b, 0) <= 0) {
  throw new Error(`MIX="${__ENV.MIX}": give five non-negative weights browse,detail,cart,order,buy`);
}
const ACTIONS = ['browse', 'detail', 'cart', 'order', 'buy'];
const TOTAL = MIX.reduce((a, b) => a + b, 0);

const actions = new Counter('actions');
const retried = new Counter('retried');

export const options = {
  scenarios: {
    mixed: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: VUS,
      maxVUs: envInt('MAX_VUS', 100),
    },
  },
  thresholds: {
    // Every request, and the write paths on their own (they are the slow ones).
    'http_req_duration{scenario:mixed}': [`p(95)<${P95_MS}`],
    'http_req_duration{name:POST /orders}': [`p(95)<${P95_MS}`],
    'http_req_duration{name:POST /orders/{id}/payment}': [`p(95)<${P95_MS}`],
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    // The server kept up with the arrival rate.
    dropped_iterations: ['count==0'],
    // Always true: listed so the summary shows how many actions of each kind ran.
    ...Object.fromEntries(ACTIONS.map((a) => [`actions{action:${a}}`, ['count>=0']])),
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  // Browsing picks among the products customers can see (every page of the public list).
  const productIds = [];
  for (let page = 1; ; page++) {
    const res = http.get(`${API}/products?size=100&page=${page}`, { tags: { name: 'GET /products' } });
    if (res.status !== 200) throw new Error(`GET /products: ${res.status} ${res.body}`);
    const items = res.json('items');
    items.forEach((p) => productIds.push(p.id));
    if (items.length < 100) break;
  }
  const { productId, optionId } = createProduct({ name: `k6 mixed ${new Date().toISOString()}`, stock: STOCK, price: PRICE });
  console.log(`mixed: ${productIds.length} products to browse; writes on product ${productId} option ${optionId}; mix ${ACTIONS.map((a, i) => `${a} ${MIX[i]}`).join(', ')}`);
  return { productIds, productId, optionId, runId: newRunId() };
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function chooseAction() {
  let r = Math.random() * TOTAL;
  for (let i = 0; i < ACTIONS.length; i++) {
    r -= MIX[i];
    if (r < 0) return ACTIONS[i];
  }
  return ACTIONS[ACTIONS.length - 1];
}

/** Places a one-unit order for `person`; returns the order id, or undefined when refused. */
function placeOrder(data, person, key) {
  const body = JSON.stringify({ user_id: person.user_id, items: [{ product_option_id: data.optionId, quantity: 1 }] });
  const params = userParams(person, 'POST /orders', { headers: { 'Idempotency-Key': idemKey(data.runId, 'order', key) } });
  const res = withRetries(() => http.post(`${API}/orders`, body, params), () => retried.add(1));
  const ok = check(res, { 'order: 201 PENDING': (r) => r.status === 201 && field(r, 'status') === 'PENDING' });
  return ok ? res.json('order_id') : undefined;
}

export default function (data) {
  const person = pick(tokens);
  const action = chooseAction();
  actions.add(1, { action });
  // Unique per iteration across VUs: the idempotency keys of two actions never collide.
  const key = `${__VU}-${__ITER}`;

  switch (action) {
    case 'browse': {
      const sort = pick(['popular', 'newest', 'price_asc', 'price_desc']);
      const category = pick(['', '', 'electronics', 'fashion', 'food', 'beauty', 'home', 'sports']);
      const q = `page=${1 + Math.floor(Math.random() * 3)}&size=20&sort=${sort}${category ? `&category=${category}` : ''}`;
      const res = http.get(`${API}/products?${q}`, { tags: { name: 'GET /products' } });
      check(res, { 'browse: 200 with items': (r) => r.status === 200 && Array.isArray(field(r, 'items')) });
      break;
    }
    case 'detail': {
      const res = http.get(`${API}/products/${pick(data.productIds)}`, { tags: { name: 'GET /products/{id}' } });
      check(res, { 'detail: 200 with options': (r) => r.status === 200 && Array.isArray(field(r, 'options')) });
      break;
    }
    case 'cart': {
      const add = http.post(`${API}/users/${person.user_id}/cart`, JSON.stringify({ product_option_id: data.optionId, quantity: 1 }),
        userParams(person, 'POST /users/{id}/cart'));
      check(add, { 'cart add: 201': (r) => r.status === 201, 'cart add: no error code': (r) => errorCode(r) === undefined });
      const cart = http.get(`${API}/users/${person.user_id}/cart`, userParams(person, 'GET /users/{id}/cart'));
      check(cart, { 'cart: 200 with items': (r) => r.status === 200 && field(r, 'items.#') > 0 });
      break;
    }
    case 'order':
      placeOrder(data, person, key);
      break;
    case 'buy': {
      const orderId = placeOrder(data, person, key);
      if (!orderId) break;
      const params = userParams(person, 'POST /orders/{id}/payment', { headers: { 'Idempotency-Key': idemKey(data.runId, 'pay', key) } });
      const res = withRetries(() => http.post(`${API}/orders/${orderId}/payment`, JSON.stringify({ user_id: person.user_id }), params),
        () => retried.add(1));
      check(res, { 'payment: 200 PAID': (r) => r.status === 200 && field(r, 'status') === 'PAID' });
      break;
    }
    default:
      throw new Error(`unknown action ${action}`);
  }
}

export function teardown(data) {
  const option = productDetail(data.productId).options[0];
  console.log(`mixed: write-path option ${option.id} has ${option.available} of ${STOCK} available (unpaid orders hold theirs until they expire)`);
}
