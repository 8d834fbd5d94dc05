// Socket.IO / Engine.IO fuzzer for ticketd (issue 19 part 4), driven by scripts/fuzz-socket:
//
//   node scripts/fuzz-socket.mjs --bin PATH --out DIR [--seconds N] [--concurrency N] [--seed N]
//
// Starts the server, measures a control client (the official socket.io-client, authorized, whose
// user posts a message over REST every 100 ms and times its arrival on the socket), then throws
// hostile packets at the server for --seconds over raw WebSockets (the `ws` package that comes
// with socket.io-client), HTTP long-polling and raw TCP: malformed Engine.IO and Socket.IO
// packets, invalid UTF-8, oversized frames and bodies, events before connect, acks to nothing,
// binary attachment claims, unknown namespaces and sids, deep nesting, floods. Each probe's
// connection must be answered or closed (for WebSockets, a close frame) within 3 s, or stay
// quiet only where the packet was well formed and asks for nothing; the server must not crash,
// /healthz must answer, and the control client's p99 during and after the fuzzing must stay
// within max(3 x its p99 before, before + 250 ms); a new client must still connect.
// Writes DIR/result.json; exits 1 when a rule is broken.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/socket/package.json'));
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const args = { seconds: 20, concurrency: 8, seed: Date.now() % 1e9, bin: '', out: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const [k, v] = [process.argv[i], process.argv[i + 1]];
  if (k === '--bin') args.bin = v;
  else if (k === '--out') args.out = v;
  else if (k === '--seconds') args.seconds = Number(v);
  else if (k === '--concurrency') args.concurrency = Number(v);
  else if (k === '--seed') args.seed = Number(v);
  else throw new Error(`unknown argument ${k}`);
}
if (!args.bin || !args.out) throw new Error('--bin and --out are required');
mkdirSync(args.out, { recursive: true });

let seed = args.seed >>> 0 || 1;
const random = () => {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 2 ** 32;
};
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = JSON.stringify;
const SECRET = 'fuzz-' + randomBytes(8).toString('hex');

function sign(claims) {
  const b = (x) => Buffer.from(json(x)).toString('base64url');
  const input = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}
const tokenOf = (id, role) => sign({ id, username: id, email: `${id}@example.com`, role });

// ---------------------------------------------------------------------------------------------
// The server

const port = await new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const BASE = `http://127.0.0.1:${port}`;
const logFd = openSync(path.join(args.out, 'server.log'), 'w');
const server = spawn(args.bin, [], {
  env: {
    PATH: process.env.PATH, DATA_DIR: path.join(args.out, 'data'), WEB_SERVER_HOST: '127.0.0.1',
    WEB_SERVER_PORT: String(port), JWT_SECRET_KEY: SECRET, RATE_LIMITS: 'off', RUST_LOG: 'warn',
  },
  stdio: ['ignore', logFd, logFd],
});
let serverExit = null;
server.on('exit', (code, signal) => { serverExit = { code, signal }; });
for (let i = 0; ; i += 1) {
  try {
    if ((await fetch(`${BASE}/readyz`)).status === 200) break;
  } catch { /* not yet */ }
  if (i > 600 || serverExit) throw new Error('the server did not start');
  await sleep(50);
}

async function rest(method, p, token, body) {
  const r = await fetch(BASE + p, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : json(body),
    signal: AbortSignal.timeout(10000),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

// ---------------------------------------------------------------------------------------------
// The control client: REST post -> socket event, every 100 ms

const control = { samples: [], phase: 'before', failures: 0 };
const ctlToken = tokenOf('control', 'CUSTOMER');
const ticket = (await rest('POST', '/api/v1/tickets', ctlToken, { topic: 'control', description: 'latency' })).body;
const ctl = io(BASE, { forceNew: true, auth: { token: ctlToken } });
const waiting = new Map();
ctl.on('message', (m) => {
  const w = waiting.get(m.content);
  if (w) w();
});
await new Promise((r, j) => { ctl.once('connect', r); setTimeout(() => j(new Error('control did not connect')), 10000); });
await sleep(300);
let controlRunning = true;
const controlLoop = (async () => {
  for (let n = 0; controlRunning; n += 1) {
    const content = `ctl ${n}`;
    const started = performance.now();
    const seen = new Promise((r) => waiting.set(content, r));
    try {
      const r = await rest('POST', `/api/v1/tickets/${ticket.id}/messages`, ctlToken, { content });
      if (r.status !== 200) throw new Error(`post ${r.status}`);
      const ok = await Promise.race([seen.then(() => true), sleep(5000).then(() => false)]);
      if (!ok) throw new Error('no event within 5 s');
      control.samples.push({ phase: control.phase, ms: performance.now() - started });
    } catch {
      control.failures += 1;
      control.samples.push({ phase: control.phase, ms: 5000 });
    }
    waiting.delete(content);
    await sleep(100);
  }
})();

function p99(phase) {
  const xs = control.samples.filter((s) => s.phase === phase).map((s) => s.ms).sort((a, b) => a - b);
  if (!xs.length) return null;
  return Math.round(xs[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] * 10) / 10;
}

// ---------------------------------------------------------------------------------------------
// Probes. Each resolves to {outcome: answered|closed|silent, detail}.

const WS_URL = `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`;
const QUIET_MS = 3000;

/** Opens a raw Engine.IO WebSocket, sends `frames` (strings, or {binary: Buffer}, or {text: Buffer}). */
function wsProbe(frames, { connectFirst = false } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(WS_URL, { maxPayload: 1 << 20 });
    let opened = false;
    let done = false;
    let timer = null;
    const finish = (outcome, detail) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try { ws.terminate(); } catch { /* gone */ }
      resolve({ outcome, detail });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish('silent', ''), QUIET_MS);
    };
    let expectConnect = connectFirst;
    ws.on('message', (data) => {
      const text = data.toString();
      if (!opened) {
        opened = true;
        if (connectFirst) {
          ws.send('40');
          return;
        }
      } else if (expectConnect && text.startsWith('40')) {
        expectConnect = false;
      } else if (text === '2') {
        ws.send('3');
        return;
      } else {
        return finish('answered', text.slice(0, 120));
      }
      if (expectConnect) return;
      for (const f of frames) {
        if (ws.readyState !== WebSocket.OPEN) break;
        if (typeof f === 'string') ws.send(f);
        else if (f.binary) ws.send(f.binary, { binary: true });
        else ws.send(f.text, { binary: false });
      }
      arm();
    });
    ws.on('close', (code) => finish('closed', `close ${code}`));
    ws.on('error', (e) => finish('closed', `error ${e.code || e.message}`));
    timer = setTimeout(() => finish('silent', 'no open packet'), QUIET_MS * 2);
  });
}

async function pollingProbe(kind) {
  const get = (q) => fetch(`${BASE}/socket.io/?EIO=4&transport=polling${q}`, { signal: AbortSignal.timeout(QUIET_MS) });
  try {
    if (kind === 'bad-version') {
      const r = await fetch(`${BASE}/socket.io/?EIO=${pick(['3', '5', 'x', ''])}&transport=polling`, { signal: AbortSignal.timeout(QUIET_MS) });
      return { outcome: 'answered', detail: `HTTP ${r.status}` };
    }
    if (kind === 'bad-transport') {
      const r = await fetch(`${BASE}/socket.io/?EIO=4&transport=${pick(['foo', '', 'websocket'])}`, { signal: AbortSignal.timeout(QUIET_MS) });
      return { outcome: 'answered', detail: `HTTP ${r.status}` };
    }
    if (kind === 'unknown-sid') {
      const r = await fetch(`${BASE}/socket.io/?EIO=4&transport=polling&sid=${randomBytes(10).toString('base64url')}`, {
        method: 'POST', body: '40', signal: AbortSignal.timeout(QUIET_MS),
      });
      return { outcome: 'answered', detail: `HTTP ${r.status}` };
    }
    const hs = await (await get('')).text();
    const sid = JSON.parse(hs.slice(1)).sid;
    const bodies = {
      garbage: randomBytes(64).toString('latin1'),
      oversized: '42' + json(['authorize', { token: 'x'.repeat(1 << 20) }]),
      'event-before-connect': '42["authorize",{"token":"nope"}]',
      'separator-flood': '\x1e'.repeat(5000),
      'many-packets': Array.from({ length: 500 }, () => '42["x"]').join('\x1e'),
      'connect-bad-json': '40{"token":',
    };
    const post = await fetch(`${BASE}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', body: bodies[kind], headers: { 'content-type': 'text/plain;charset=UTF-8' }, signal: AbortSignal.timeout(QUIET_MS),
    });
    if (post.status !== 200) return { outcome: 'answered', detail: `POST HTTP ${post.status}` };
    const r = await get(`&sid=${sid}`);
    const text = await r.text();
    return { outcome: r.status === 200 ? 'answered' : 'closed', detail: `GET HTTP ${r.status} ${text.slice(0, 80)}` };
  } catch (e) {
    return { outcome: e.name === 'TimeoutError' ? 'silent' : 'closed', detail: e.message };
  }
}

function rawTcpProbe(request) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => { s.destroy(); resolve({ outcome: got ? 'answered' : 'silent', detail: got.slice(0, 60) }); }, QUIET_MS);
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(t); resolve({ outcome: got ? 'answered' : 'closed', detail: got.split('\r\n')[0] }); });
    s.on('error', () => {});
    s.write(request);
  });
}

const nested = (n) => '['.repeat(n) + ']'.repeat(n);
const token = tokenOf('fuzzer', 'CUSTOMER');
/** name -> [run, may stay silent (the packet is well formed and asks for no answer)] */
const PROBES = {
  // Starts with no packet type: a leading digit could make a well-formed noop or ping.
  'ws garbage text': [() => wsProbe(['Z' + randomBytes(40).toString('base64')]), false],
  'ws invalid utf-8': [() => wsProbe([{ text: Buffer.from([0x34, 0x32, 0xff, 0xfe, 0xfd]) }]), false],
  'ws oversized frame (1 MiB)': [() => wsProbe(['42' + json(['authorize', { token: 'x'.repeat(1 << 20) }])]), false],
  'ws just over the limit (17 KiB)': [() => wsProbe(['42' + json(['authorize', { token: 'x'.repeat(17 * 1024) }])], { connectFirst: true }), false],
  'ws event before connect': [() => wsProbe(['42["authorize",{"token":"nope"}]']), false],
  'ws ack to nothing': [() => wsProbe(['43999[]'], { connectFirst: true }), true],
  'ws binary attachment claim': [() => wsProbe(['451-["authorize",{"_placeholder":true,"num":0}]'], { connectFirst: true }), false],
  'ws attachment count lie': [() => wsProbe(['4599999-["x"]'], { connectFirst: true }), false],
  'ws stray binary frame': [() => wsProbe([{ binary: randomBytes(64) }], { connectFirst: true }), false],
  'ws connect with bad json': [() => wsProbe(['40{"token":']), false],
  'ws connect unknown namespace': [() => wsProbe(['40/admin,{}']), false],
  'ws unknown packet types': [() => wsProbe([pick(['9', '4', '49', '4x', '7', ''])]), false],
  'ws upgrade/noop out of order': [() => wsProbe(['5', '6', '2probe'], { connectFirst: true }), true],
  'ws deep nesting': [() => wsProbe(['42' + '["x",' + nested(6000) + ']'], { connectFirst: true }), true],
  'ws authorize with junk': [() => wsProbe([`42["authorize",${pick(['1', 'null', '"s"', '[]', '{"token":7}', `{"token":"${token}","since":-1}`])}]`], { connectFirst: true }), false],
  'ws event flood (3000 frames)': [() => wsProbe(Array.from({ length: 3000 }, (_, i) => `42["x${i % 7}",${i}]`), { connectFirst: true }), true],
  'ws disconnect unknown namespace': [() => wsProbe(['41/nope,'], { connectFirst: true }), true],
  'polling garbage': [() => pollingProbe('garbage'), false],
  'polling oversized body': [() => pollingProbe('oversized'), false],
  'polling event before connect': [() => pollingProbe('event-before-connect'), false],
  'polling separator flood': [() => pollingProbe('separator-flood'), false],
  'polling 500 packets in one body': [() => pollingProbe('many-packets'), false],
  'polling connect bad json': [() => pollingProbe('connect-bad-json'), false],
  'polling unknown sid': [() => pollingProbe('unknown-sid'), false],
  'polling bad EIO version': [() => pollingProbe('bad-version'), false],
  'polling bad transport': [() => pollingProbe('bad-transport'), false],
  'tcp bad websocket upgrade': [() => rawTcpProbe(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: !!\r\n\r\n`), false],
  'tcp half request': [() => rawTcpProbe('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost'), true],
};

// ---------------------------------------------------------------------------------------------
// The run

const tally = {};
const broken = [];
async function runProbe(name) {
  const [run, maySilence] = PROBES[name];
  const r = await run();
  const t = (tally[name] ||= { tried: 0, answered: 0, closed: 0, silent: 0, unclean_closes: 0, examples: {} });
  t.tried += 1;
  t[r.outcome] += 1;
  // A WebSocket dropped without a close frame (1006) or reset: counted, not a failure.
  if (r.outcome === 'closed' && /1006|ECONNRESET/.test(r.detail)) t.unclean_closes += 1;
  t.examples[r.outcome] ||= r.detail;
  if (r.outcome === 'silent' && !maySilence) broken.push(`${name}: neither answered nor closed within ${QUIET_MS} ms`);
}

async function healthy() {
  try {
    return (await fetch(`${BASE}/healthz`, { signal: AbortSignal.timeout(5000) })).status === 200;
  } catch {
    return false;
  }
}

await sleep(4000);
control.phase = 'during';
// FUZZ_ONLY=<regex> narrows the probes, to find which one hurts.
const names = Object.keys(PROBES).filter((n) => !process.env.FUZZ_ONLY || new RegExp(process.env.FUZZ_ONLY).test(n));
const fuzzUntil = Date.now() + args.seconds * 1000;
let round = 0;
const lanes = Array.from({ length: args.concurrency }, async (_, lane) => {
  // Every probe once, spread over the lanes, then random ones.
  for (let i = lane; i < names.length; i += args.concurrency) await runProbe(names[i]);
  while (Date.now() < fuzzUntil && !serverExit) {
    round += 1;
    await runProbe(pick(names));
    if (round % 50 === 0 && !(await healthy())) broken.push(`/healthz failed after ${round} probes`);
  }
});
await Promise.all(lanes);
control.phase = 'after';
await sleep(4000);
controlRunning = false;
await controlLoop;

// A new, normal client still gets in.
const fresh = io(BASE, { forceNew: true, auth: { token: tokenOf('late', 'CUSTOMER') } });
const freshOk = await Promise.race([new Promise((r) => fresh.once('connect', () => r(true))), sleep(5000).then(() => false)]);
fresh.close();
ctl.close();

const before = p99('before');
const during = p99('during');
const after = p99('after');
// Generous: CI machines are small and shared; a server stalled by the fuzzing misses it by far.
const limit = Math.round(Math.max(3 * before, before + 250));
if (serverExit) broken.push(`the server exited: ${json(serverExit)}`);
if (!(await healthy())) broken.push('/healthz fails after the fuzzing');
if (!freshOk) broken.push('a new client could not connect after the fuzzing');
if (during > limit) broken.push(`control p99 during the fuzzing ${during} ms > ${limit} ms`);
if (after > limit) broken.push(`control p99 after the fuzzing ${after} ms > ${limit} ms`);
server.kill('SIGTERM');

const probes = Object.values(tally).reduce((n, t) => n + t.tried, 0);
const result = {
  seconds: args.seconds, concurrency: args.concurrency, seed: args.seed, probes,
  control: {
    p99_before_ms: before, p99_during_ms: during, p99_after_ms: after, limit_ms: limit,
    samples: control.samples.length, failures: control.failures,
  },
  tally, broken: [...new Set(broken)], ok: broken.length === 0,
};
writeFileSync(path.join(args.out, 'result.json'), json(result, null, 2));
for (const [name, t] of Object.entries(tally)) {
  console.log(`  ${name}: ${t.tried} tried, ${t.answered} answered, ${t.closed} closed (${t.unclean_closes} without a close frame), ${t.silent} silent  ${json(t.examples).slice(0, 160)}`);
}
console.log(`  control p99: before ${before} ms, during ${during} ms, after ${after} ms (limit ${limit} ms), ${control.failures} failures`);
for (const b of result.broken) console.log(`  BROKEN ${b}`);
console.log(`${result.ok ? 'PASS' : 'FAIL'} fuzz-socket: ${probes} probes in ${args.seconds} s`);
process.exit(result.ok ? 0 : 1);
