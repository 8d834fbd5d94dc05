// The client half of scripts/bench-resume: seeds events over REST, then measures how long a
// socket resuming with `since` takes to receive what it missed and the first live event. Prints
// figures; exits 1 only when the replay was wrong (missing, twice, out of order).

import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(`${process.cwd()}/tests/socket/`);
const { io } = require('socket.io-client');

const BASE_URL = process.env.BASE_URL;
const SECRET = process.env.JWT_SECRET;
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const EVENTS = option('--events', 10000);
const RUNS = option('--runs', 3);
const CONCURRENCY = 16;

const b64url = (v) => Buffer.from(v).toString('base64url');
function token(id, role) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ id, username: id, email: `${id}@example.com`, role, iat: Math.floor(Date.now() / 1000) }));
  const sig = createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

async function call(method, path, tok, body) {
  const r = await fetch(BASE_URL + path, {
    method,
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function head(tok) {
  return (await call('GET', '/readyz', tok)).position;
}

/** Runs `n` jobs, `CONCURRENCY` at a time. */
async function pool(n, job) {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) await job(next++);
  }));
}

const ms = (t) => `${t.toFixed(1)} ms`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One resume: connect with `since`, post a live message at once, time the arrivals. */
async function resume(tok, since, expected, live) {
  return new Promise((resolve, reject) => {
    const got = [];
    let first = null;
    let lastReplayed = null;
    let liveAt = null;
    const t0 = performance.now();
    const socket = io(BASE_URL, { forceNew: true, transports: ['websocket'], auth: { token: tok, since } });
    const timer = setTimeout(() => { socket.disconnect(); reject(new Error(`timed out with ${got.length} events`)); }, 120000);
    socket.on('connect', () => {
      live().catch(reject);
    });
    socket.onAny((event, payload, at) => {
      const now = performance.now() - t0;
      if (event === 'resync_required') { reject(new Error('resync_required')); return; }
      if (!at) return;
      if (first === null) first = now;
      got.push(at.position);
      if (got.length === expected) lastReplayed = now;
      if (got.length === expected + 1) {
        liveAt = now;
        clearTimeout(timer);
        socket.disconnect();
        resolve({ got, first, lastReplayed, liveAt });
      }
    });
  });
}

async function scenario(name, tok, since, expected, live) {
  const runs = [];
  for (let r = 0; r < RUNS; r += 1) {
    const run = await resume(tok, since, expected, live);
    const ordered = run.got.every((p, i) => i === 0 || p > run.got[i - 1]);
    const unique = new Set(run.got).size === run.got.length;
    if (!ordered || !unique || run.got.length !== expected + 1) {
      console.log(`${name}: WRONG replay (${run.got.length} events, ordered ${ordered}, unique ${unique})`);
      process.exit(1);
    }
    runs.push(run);
    expected += 1;
  }
  const m = (key) => median(runs.map((r) => r[key]));
  console.log(`${name}`);
  console.log(`  replayed      ${expected - RUNS}–${expected - 1} events (${RUNS} runs, medians below; each run also replays the earlier runs' live posts)`);
  console.log(`  first event   ${ms(m('first'))}   last replayed ${ms(m('lastReplayed'))}   first live ${ms(m('liveAt'))}`);
  console.log(`  replay rate   ${Math.round((expected - 1) / (m('lastReplayed') / 1000))} events/s, every event once and in order`);
}

const run = randomBytes(3).toString('hex');
const admin = token(`admin-${run}`, 'ADMIN');
const agent = token(`agent-${run}`, 'AGENT');

// A customer whose one ticket gets EVENTS messages while they are away.
{
  const customer = token(`cust-${run}`, 'CUSTOMER');
  const ticket = await call('POST', '/api/v1/tickets', customer, { topic: 'Long story', description: 'd' });
  const since = await head(admin);
  const t = performance.now();
  await pool(EVENTS, (i) => call('POST', `/api/v1/tickets/${ticket.id}/messages`, agent, { content: `reply ${i}` }));
  console.log(`seeded      ${EVENTS} messages on one ticket in ${ms(performance.now() - t)}`);
  const live = () => call('POST', `/api/v1/tickets/${ticket.id}/messages`, agent, { content: 'live' });
  await scenario('customer, one ticket', customer, since, EVENTS, live);
}

// An agent away while 100 tickets got EVENTS events between them.
{
  const since = await head(admin);
  const tickets = [];
  const customers = Array.from({ length: 100 }, (_, i) => token(`c${i}-${run}`, 'CUSTOMER'));
  await pool(100, async (i) => { tickets[i] = await call('POST', '/api/v1/tickets', customers[i], { topic: `T${i}`, description: 'd' }); });
  const per = Math.floor((EVENTS - 100) / 100);
  const t = performance.now();
  await pool(per * 100, (i) => call('POST', `/api/v1/tickets/${tickets[i % 100].id}/messages`, customers[i % 100], { content: `m ${i}` }));
  console.log(`seeded      100 tickets and ${per * 100} messages in ${ms(performance.now() - t)}`);
  const live = () => call('POST', `/api/v1/tickets/${tickets[0].id}/messages`, customers[0], { content: 'live' });
  await scenario('agent, 100 tickets', agent, since, 100 + per * 100, live);
}
process.exit(0);
