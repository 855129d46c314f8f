// Waiting room (대기열): N people enter a fresh coupon's waiting room, poll as the server tells
// them (`poll_after_ms`) until admitted, then issue the coupon with their pass. A watcher reads
// the room every 100 ms: never more than MAX_ACTIVE passes alive. Every person ends with
// exactly one coupon, a ticket's position never changes and the people ahead never grow.
//
//   k6 run -e TOKENS=/abs/tokens.csv -e ADMIN_TOKEN=... -e PEOPLE=5000 waiting-room.js
//
// Environment (all optional except TOKENS' file and ADMIN_TOKEN):
//   BASE_URL          server (default http://127.0.0.1:8080)
//   TOKENS            token CSV of `jupang token --users 1..N --out tokens.csv` (default tokens.csv)
//   ADMIN_TOKEN       an ops_admin token (creates the coupon and its room, reads the room)
//   PEOPLE            N (default: every row of TOKENS)
//   ADMIT_PER_SECOND  the room's admission rate (default 500)
//   MAX_ACTIVE        the room's cap on live passes (default 300)
//   PASS_TTL_SECS     pass lifetime (default 2)
//   VUS               virtual users; each serves one person at a time (default 1000)
//   P99_MS            threshold on p(99) of enter and poll (default 500)
//   WATCH_SLACK_SECS  how long the watcher reads the room past the time admissions should take
//                     at the capped rate (default 20)
//
// The poll rate the server shaped is `http_reqs{name:GET ticket}` over the run's duration.

import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { API, envInt, loadTokens, userParams, adminParams, createCoupon } from './lib/jupang.js';

const tokens = loadTokens();
const PEOPLE = envInt('PEOPLE', tokens.length);
const RATE = envInt('ADMIT_PER_SECOND', 500);
const MAX_ACTIVE = envInt('MAX_ACTIVE', 300);
const TTL = envInt('PASS_TTL_SECS', 2);
const VUS = Math.min(envInt('VUS', 1000), PEOPLE);
const P99_MS = envInt('P99_MS', 500);
const WATCH_SLACK_SECS = envInt('WATCH_SLACK_SECS', 20);
if (PEOPLE < 1 || PEOPLE > tokens.length) throw new Error(`PEOPLE=${PEOPLE}: the token file has ${tokens.length} rows`);

const admitted = new Counter('admitted');
const expiredBeforePoll = new Counter('expired_before_poll');
const issuedWithPass = new Counter('issued_with_pass');
const ticketInconsistent = new Counter('ticket_inconsistent');
const overCap = new Counter('active_over_cap');
const peakActive = new Trend('active_passes');
const timeToAdmit = new Trend('time_to_admit_ms', true);
const verdict = new Rate('verdict_ok');

export const options = {
  scenarios: {
    people: { executor: 'shared-iterations', vus: VUS, iterations: PEOPLE, maxDuration: '30m', exec: 'person' },
    watcher: { executor: 'constant-vus', vus: 1, duration: `${Math.ceil(PEOPLE / Math.min(RATE, MAX_ACTIVE / TTL)) + WATCH_SLACK_SECS}s`, exec: 'watch' },
  },
  thresholds: {
    'http_req_duration{name:POST tickets}': [`p(99)<${P99_MS}`],
    'http_req_duration{name:GET ticket}': [`p(99)<${P99_MS}`],
    checks: ['rate==1'],
    active_over_cap: ['count==0'],
    ticket_inconsistent: ['count==0'],
    verdict_ok: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export function setup() {
  const couponId = createCoupon({ name: `k6 waiting room ${new Date().toISOString()}`, quantity: PEOPLE });
  const room = {
    enabled: true, admit_per_second: RATE, max_active: MAX_ACTIVE, pass_ttl_secs: TTL,
    opens_at: new Date(Date.now() - 1000).toISOString(),
  };
  const res = http.put(`${API}/admin/waiting-rooms/coupon/${couponId}`, JSON.stringify(room), adminParams('PUT room'));
  if (res.status !== 200) throw new Error(`configuring the room answered ${res.status}: ${res.body}`);
  console.log(`waiting room: coupon ${couponId}, ${PEOPLE} people, ${RATE}/s, max_active ${MAX_ACTIVE}, pass ${TTL} s`);
  return { couponId, started: Date.now() };
}

export function person(data) {
  // One person per iteration of the whole test (__ITER counts per VU: every VU would be person 0).
  const p = tokens[exec.scenario.iterationInTest];
  const base = `${API}/waiting-rooms/coupon/${data.couponId}/tickets`;
  const entered = http.post(base, null, userParams(p, 'POST tickets'));
  if (!check(entered, { 'enter: 201 or 200': (r) => r.status === 201 || r.status === 200 })) return;
  const ticket = entered.json();
  let position = null;
  let ahead = Infinity;
  sleep(ticket.poll_after_ms / 1000);
  for (;;) {
    const res = http.get(`${base}/${ticket.ticket_id}`, userParams(p, 'GET ticket'));
    if (!check(res, { 'poll: 200': (r) => r.status === 200 })) return;
    const t = res.json();
    if (position !== null && t.position !== position) ticketInconsistent.add(1);
    if (t.people_ahead !== null && t.people_ahead > ahead) ticketInconsistent.add(1);
    position = t.position;
    if (t.people_ahead !== null) ahead = t.people_ahead;
    if (t.status === 'ADMITTED') {
      admitted.add(1);
      timeToAdmit.add(Date.now() - data.started);
      const issued = http.post(`${API}/coupons/${data.couponId}/issue`, JSON.stringify({ user_id: p.user_id }),
        userParams(p, 'POST /coupons/{id}/issue', { headers: { 'X-Waiting-Room-Pass': t.pass } }));
      if (check(issued, { 'issue with a pass: 201': (r) => r.status === 201 })) issuedWithPass.add(1);
      return;
    }
    if (t.status === 'EXPIRED') {
      expiredBeforePoll.add(1);
      return;
    }
    sleep(t.poll_after_ms / 1000);
  }
}

export function watch(data) {
  const res = http.get(`${API}/admin/waiting-rooms/coupon/${data.couponId}`, adminParams('GET room'));
  if (res.status === 200) {
    const active = res.json('active');
    peakActive.add(active);
    if (active > MAX_ACTIVE) overCap.add(1);
  }
  sleep(0.1);
}

export function teardown(data) {
  const room = http.get(`${API}/admin/waiting-rooms/coupon/${data.couponId}`, adminParams('GET room')).json();
  const ok = room.waiting === 0 && room.admitted === PEOPLE;
  console.log(`waiting room: ${room.admitted} admitted, ${room.waiting} waiting, took ${(Date.now() - data.started) / 1000} s`);
  verdict.add(ok);
}
