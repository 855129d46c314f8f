// Open run ("선착순 쿠폰"): N people race for M coupons of a fresh flash-sale coupon; some of them
// double-click (two simultaneous requests). Every answer must be one the contract allows, no
// one may hold two, and at the end the server must report exactly min(N, M) issued.
//
//   k6 run -e TOKENS=/abs/tokens.csv -e ADMIN_TOKEN=... -e PEOPLE=1000 -e COUPONS=100 open-run.js
//
// Environment (all optional except TOKENS' file and ADMIN_TOKEN):
//   BASE_URL       server (default http://127.0.0.1:8080)
//   TOKENS         token CSV of `jupang token --users 1..N --out tokens.csv` (default tokens.csv)
//   ADMIN_TOKEN    a marketing_manager or ops_admin token: creates the coupon, reads its stats
//   PEOPLE         N, people taking part (default: every row of TOKENS)
//   COUPONS        M, coupons in the sale (default 100)
//   DOUBLE_CLICK   share of people who press twice at once, 0..1 (default 0.1)
//   RATE           people arriving per second (constant-arrival-rate); unset = as fast as VUS allow
//   VUS            virtual users (fixed-VU mode: the connection count; arrival mode: preallocated)
//   MAX_VUS        arrival mode only: the most VUs k6 may add to hold RATE (default 4 x VUS)
//   P95_MS         threshold on p(95) of http_req_duration of the issue requests (default 500)
//   COUPON_ID      use this existing coupon instead of creating one (its M must be COUPONS)
//   MARKET         market of the coupon (default KR: `jupang seed` users are KR)
//   SETTLE_MS      how long teardown waits for the counters to settle (default 5000)

import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { API, envInt, envFloat, loadTokens, userParams, errorCode, withRetries, createCoupon, couponStats } from './lib/jupang.js';

const tokens = loadTokens();
const PEOPLE = envInt('PEOPLE', tokens.length);
const COUPONS = envInt('COUPONS', 100);
const DOUBLE_CLICK = envFloat('DOUBLE_CLICK', 0.1);
const RATE = envInt('RATE', 0);
const VUS = envInt('VUS', 50);
const P95_MS = envInt('P95_MS', 500);
if (PEOPLE < 1 || PEOPLE > tokens.length) {
  throw new Error(`PEOPLE=${PEOPLE}: the token file has ${tokens.length} rows (jupang token --users 1..${PEOPLE})`);
}
if (COUPONS < 1) throw new Error('COUPONS must be at least 1');
const EXPECTED = Math.min(PEOPLE, COUPONS);

/** Outcomes, one count per request. */
const issued = new Counter('issued');
const alreadyIssued = new Counter('already_issued');
const soldOut = new Counter('sold_out');
const otherOutcome = new Counter('other_outcome');
const retried = new Counter('retried');
/** Correctness: people who got two coupons (must stay 0), and the end-of-run verdict. */
const issuedTwice = new Counter('issued_twice');
const verdict = new Rate('verdict_ok');

// One person = one iteration. Fixed VUs: exactly PEOPLE iterations shared by VUS connections.
// Arrival rate: RATE people per second for as long as PEOPLE needs; iterations past PEOPLE do
// nothing, and a dropped iteration (no VU free) fails the run, as a person was never served.
const scenario = RATE > 0
  ? {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${Math.ceil(PEOPLE / RATE)}s`,
      preAllocatedVUs: VUS,
      maxVUs: envInt('MAX_VUS', VUS * 4),
    }
  : { executor: 'shared-iterations', vus: Math.min(VUS, PEOPLE), iterations: PEOPLE, maxDuration: '30m' };

export const options = {
  scenarios: { open_run: scenario },
  // Keep-alive connections are k6's default; say so, since the comparison with loadgen relies on it.
  noConnectionReuse: false,
  thresholds: {
    // Latency of the coupon requests (setup/teardown admin calls are excluded by the tag).
    'http_req_duration{name:POST /coupons/{id}/issue}': [`p(95)<${P95_MS}`],
    // Every answer is one the contract allows (no 5xx, no unexpected code).
    checks: ['rate==1'],
    // Never more coupons than the sale has, and no one holds two.
    issued: [`count<=${COUPONS}`],
    issued_twice: ['count==0'],
    // The server's own count at the end equals min(N, M) (recorded by teardown).
    verdict_ok: ['rate==1'],
    // Every person was actually served (arrival mode: enough VUs to hold the rate).
    dropped_iterations: ['count==0'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  const couponId = __ENV.COUPON_ID
    ? Number(__ENV.COUPON_ID)
    : createCoupon({ name: `k6 open run ${new Date().toISOString()}`, quantity: COUPONS, market: __ENV.MARKET || 'KR' });
  const stats = couponStats(couponId);
  if (stats.total_quantity !== COUPONS || stats.issued !== 0) {
    throw new Error(`coupon ${couponId} has total ${stats.total_quantity} and ${stats.issued} issued; want a fresh coupon of ${COUPONS}`);
  }
  console.log(`open run: coupon ${couponId}, ${PEOPLE} people, ${COUPONS} coupons, double-click ${DOUBLE_CLICK}`);
  return { couponId };
}

/** Classifies one answer, counts it, and checks it is allowed. Returns true when issued. */
function record(res) {
  const code = errorCode(res);
  if (res.status === 201) issued.add(1);
  else if (res.status === 400 && code === 'ALREADY_ISSUED') alreadyIssued.add(1);
  else if (res.status === 400 && code === 'COUPON_SOLD_OUT') soldOut.add(1);
  else otherOutcome.add(1, { status: String(res.status), code: String(code) });
  check(res, {
    'issue: 201, or 400 ALREADY_ISSUED / COUPON_SOLD_OUT': (r) =>
      r.status === 201 || (r.status === 400 && (code === 'ALREADY_ISSUED' || code === 'COUPON_SOLD_OUT')),
  });
  return res.status === 201;
}

export default function (data) {
  const index = exec.scenario.iterationInTest;
  if (index >= PEOPLE) return;
  const person = tokens[index];
  const url = `${API}/coupons/${data.couponId}/issue`;
  const body = JSON.stringify({ user_id: person.user_id });
  // 400 is an expected business answer here; the checks judge it, not http_req_failed.
  const params = userParams(person, 'POST /coupons/{id}/issue', { responseCallback: http.expectedStatuses(201, 400) });
  const onRetry = () => retried.add(1);

  if (Math.random() < DOUBLE_CLICK) {
    // A double click: two identical requests in flight at once, on two connections.
    const req = ['POST', url, body, params];
    const send = () => http.post(url, body, params);
    const [a, b] = http.batch([req, req]).map((first) => withRetries(send, onRetry, first));
    let wins = record(a) ? 1 : 0;
    wins += record(b) ? 1 : 0;
    if (wins > 1) issuedTwice.add(1);
  } else {
    record(withRetries(() => http.post(url, body, params), onRetry));
  }
}

export function teardown(data) {
  // V2 counts an issue in Redis before the 201, so `issued` is final at once; SETTLE_MS also
  // lets `persisted` (the consumer's Postgres writes) catch up, which is reported, not judged.
  const deadline = Date.now() + envInt('SETTLE_MS', 5000);
  let stats = couponStats(data.couponId);
  while ((stats.issued !== EXPECTED || stats.persisted !== stats.issued) && Date.now() < deadline) {
    sleep(0.2);
    stats = couponStats(data.couponId);
  }
  console.log(`coupon ${data.couponId}: ${JSON.stringify(stats)}; expected issued = min(${PEOPLE}, ${COUPONS}) = ${EXPECTED}`);
  const ok = check(stats, {
    'server: issued == min(N, M)': (s) => s.issued === EXPECTED,
    'server: remaining == M - issued': (s) => s.remaining === COUPONS - s.issued,
    'server: issued <= M': (s) => s.issued <= COUPONS,
  });
  verdict.add(ok);
  if (stats.persisted !== stats.issued) {
    console.warn(`persisted ${stats.persisted} of ${stats.issued} after ${envInt('SETTLE_MS', 5000)} ms`);
  }
}
