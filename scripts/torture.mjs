// Crash torture for ticketd (issue 19 part 1), driven by scripts/torture:
//
//   node scripts/torture.mjs --bin PATH --out DIR [--store embedded|mongo] [--cycles N]
//        [--duration SECS] [--workers N] [--instances 1|2] [--db-restart-every N] [--seed N]
//        [--trace-secrets 1]
//
// Steady mixed load (each worker opens tickets, posts, edits, deletes, closes, reopens, claims on
// its own tickets, as its customer and its agent) plus Socket.IO clients that resume with
// `since`, against a real server that is killed with SIGKILL at a random instant of every cycle
// and restarted on the same data (with --instances 2, one of two servers on one MongoDB; with
// --db-restart-every N, every Nth cycle kills the database server itself instead).
//
// "Acknowledged" means: the client received the success answer (see ADR 0028). Every request is
// retried until it gets a definitive answer (a status other than a connection failure or 503),
// creating requests with the same Idempotency-Key, so the workers' model of what exists is exact.
// After each cycle the load pauses and the checks run:
//   - the changes feed still starts with everything it showed before (nothing acknowledged or
//     seen was lost or rewritten); positions are 1..N, each stream's versions 1..k;
//   - every acknowledged ticket and message has exactly one TicketOpened / MessagePosted event,
//     and there are no others (a retry never created a second one);
//   - the read API shows every ticket with the acknowledged status and assignee, and exactly the
//     acknowledged live messages, in order, with their last acknowledged content;
//   - `ticketd verify` passes (hash chains, read models equal a rebuild);
//   - every socket received, once and in order, exactly the deliveries the feed says concern it.
// Prints one JSON line per cycle and writes DIR/result.json; exits 1 on the first failed check.
// With --trace-secrets 1 the servers run at RUST_LOG=trace with every secret configured and
// their logs are searched for them at the end (scripts/torture-secrets.mjs; DIR/secrets.json).

import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { appendFileSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as secretsRun from './torture-secrets.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/socket/package.json'));
const { io } = require('socket.io-client');

// ---------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const a = {
    store: 'embedded', cycles: 3, duration: 3, workers: 4, instances: 1, dbRestartEvery: 0,
    seed: Date.now() % 1e9, bin: '', out: '', mongoUri: process.env.MONGO_URI || '', dbName: '',
    inject: '', traceSecrets: 0,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${k} wants a number, got ${v}`);
      return n;
    };
    switch (k) {
      case '--store': a.store = v; break;
      case '--cycles': a.cycles = num(); break;
      case '--duration': a.duration = num(); break;
      case '--workers': a.workers = num(); break;
      case '--instances': a.instances = num(); break;
      case '--db-restart-every': a.dbRestartEvery = num(); break;
      case '--seed': a.seed = num(); break;
      case '--bin': a.bin = v; break;
      case '--out': a.out = v; break;
      case '--mongo-uri': a.mongoUri = v; break;
      case '--db-name': a.dbName = v; break;
      case '--inject': a.inject = v; break;
      case '--trace-secrets': a.traceSecrets = num(); break;
      default: throw new Error(`unknown argument ${k}`);
    }
  }
  if (!a.bin || !a.out) throw new Error('--bin and --out are required');
  if (a.store === 'mongo' && !a.mongoUri) throw new Error('--store mongo needs --mongo-uri (or MONGO_URI)');
  return a;
}

const ARGS = parseArgs(process.argv.slice(2));
mkdirSync(ARGS.out, { recursive: true });

// A small seeded generator, so a run's choices can be replayed with --seed.
let rngState = BigInt(ARGS.seed) + 0x9e3779b97f4a7c15n;
function random() {
  rngState = (rngState + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = rngState;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  z ^= z >> 31n;
  return Number(z >> 11n) / 2 ** 53;
}
const pick = (xs) => xs[Math.floor(random() * xs.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = JSON.stringify;
const log = (...xs) => console.log(...xs);
const SECRET = 'torture-secret-' + randomBytes(8).toString('hex');
const RUN = randomBytes(3).toString('hex');

class CheckFailed extends Error {}
function check(cond, what) {
  if (!cond) throw new CheckFailed(what);
}

// ---------------------------------------------------------------------------------------------
// Tokens

// Every JWT the run sends, for the search of --trace-secrets.
const JWTS = new Set();
function sign(claims) {
  const b = (x) => Buffer.from(json(x)).toString('base64url');
  const input = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
  const token = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
  JWTS.add(token);
  return token;
}
function user(name, role) {
  const id = `${name}-${RUN}`;
  return { id, name, role, token: sign({ id, username: name, email: `${name}@example.com`, role }) };
}
const ADMIN = user('admin', 'ADMIN');

// ---------------------------------------------------------------------------------------------
// Servers: ticketd instances and (for --store mongo) nothing else; the database is started by
// scripts/torture, which hands its restart command over in TORTURE_DB_RESTART.

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const DATA_DIR = path.join(ARGS.out, 'data');
mkdirSync(DATA_DIR, { recursive: true });
const DB_NAME = ARGS.dbName || `torture_${RUN}`;

// --trace-secrets: the loopback stand-in for Discord and the webhooks, and the secrets it holds.
const SECRETS = ARGS.traceSecrets ? secretsRun.makeSecrets() : null;
const STUB = SECRETS ? await secretsRun.startStub(SECRETS) : null;

function serverEnv(port) {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || '/tmp',
    DATA_DIR,
    WEB_SERVER_HOST: '127.0.0.1',
    WEB_SERVER_PORT: String(port),
    JWT_SECRET_KEY: SECRET,
    SERVER_MODE: 'DEVELOPMENT',
    RATE_LIMITS: 'off',
    MAX_CONNECTIONS_PER_IP: '0',
    RUST_LOG: process.env.TORTURE_RUST_LOG || (ARGS.traceSecrets ? 'trace' : 'warn'),
    ...(STUB ? STUB.env : {}),
  };
  if (ARGS.store === 'mongo') {
    env.MONGO_URI = ARGS.mongoUri;
    env.DB_NAME = DB_NAME;
  }
  return env;
}

class Instance {
  constructor(index, port) {
    this.index = index;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.starts = 0;
  }

  async start() {
    const logFile = path.join(ARGS.out, `server-${this.index}.log`);
    appendFileSync(logFile, `\n===== start ${this.starts + 1} at ${new Date().toISOString()}\n`);
    const fd = openSync(logFile, 'a');
    const started = Date.now();
    this.proc = spawn(ARGS.bin, [], { env: serverEnv(this.port), stdio: ['ignore', fd, fd] });
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    this.starts += 1;
    for (;;) {
      if (this.proc.exitCode !== null) throw new CheckFailed(`instance ${this.index} exited while starting; see ${logFile}`);
      try {
        const r = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() - started > 60000) throw new CheckFailed(`instance ${this.index} not ready within 60 s`);
      await sleep(50);
    }
    return Date.now() - started;
  }

  async kill9() {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP with retries until a definitive answer

const stats = { requests: 0, retries: 0, acked: {}, unexpected: [], slow: [] };

async function once(inst, method, p, token, body, headers = {}) {
  const h = { authorization: `Bearer ${token}`, ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(inst.url + p, {
    method, headers: h, body: body === undefined ? undefined : json(body), signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

/** Sends until the answer is definitive; `retried` tells whether an earlier try may have landed. */
async function definitive(instOf, method, p, token, body, headers) {
  let retried = false;
  const first = Date.now();
  for (;;) {
    stats.requests += 1;
    const inst = instOf();
    const sent = Date.now();
    let outcome;
    try {
      const r = await once(inst, method, p, token, body, headers);
      outcome = r.status;
      if (r.status !== 503) return { ...r, retried };
    } catch (e) {
      // connection refused or reset, or a timeout: the server is (re)starting
      outcome = e.name === 'TimeoutError' ? 'timeout' : 'connection error';
    } finally {
      const ms = Date.now() - sent;
      // Slow answers are recorded: on MongoDB a killed instance's open transaction holds others up.
      if (ms > 2000) stats.slow.push({ at: new Date(sent).toISOString(), instance: inst.index, method, path: p.replace(/[0-9a-f-]{36}/g, '{id}'), ms, outcome });
    }
    retried = true;
    stats.retries += 1;
    if (Date.now() - first > 180000) throw new CheckFailed(`${method} ${p}: no definitive answer within 180 s`);
    await sleep(100 + random() * 150);
  }
}

/** GET every page of a listing, following `Link: rel="next"`. */
async function walk(inst, p, token) {
  const items = [];
  let next = p;
  for (let i = 0; next && i < 10000; i += 1) {
    const r = await definitive(() => inst, 'GET', next, token);
    check(r.status === 200, `GET ${next}: ${r.status} ${json(r.body)}`);
    items.push(...r.body);
    const link = r.headers.get('link') || '';
    const m = /<([^>]+)>;\s*rel="next"/.exec(link);
    next = m ? m[1].replace(/^https?:\/\/[^/]+/, '') : null;
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// The load: each worker owns its tickets, so its model of them is exact

const ACK_LOG = path.join(ARGS.out, 'acknowledged.jsonl');
writeFileSync(ACK_LOG, '');

function acked(kind, rec) {
  stats.acked[kind] = (stats.acked[kind] || 0) + 1;
  appendFileSync(ACK_LOG, json({ at: Date.now(), kind, ...rec }) + '\n');
}

function unexpected(what) {
  stats.unexpected.push(what);
  log(`UNEXPECTED ${what}`);
}

class Worker {
  constructor(index, instances) {
    this.index = index;
    this.instances = instances;
    this.customer = user(`c${index}`, 'CUSTOMER');
    this.agent = user(`a${index}`, 'AGENT');
    /** id -> {id, status, assignee, messages: [{id, content, internal, deleted}]} */
    this.tickets = new Map();
    this.paused = true;
    this.idle = Promise.resolve();
  }

  inst() {
    return this.instances[this.index % this.instances.length];
  }

  async req(method, p, token, body, headers) {
    return definitive(() => this.inst(), method, p, token, body, headers);
  }

  run() {
    this.paused = false;
    this.idle = (async () => {
      while (!this.paused) {
        try {
          await this.step();
        } catch (e) {
          if (e instanceof CheckFailed) throw e;
          unexpected(`worker ${this.index}: ${e.stack || e}`);
          await sleep(200);
        }
      }
    })();
  }

  async pause() {
    this.paused = true;
    await this.idle;
  }

  async step() {
    const open = [...this.tickets.values()].filter((t) => t.status === 'OPEN');
    const closed = [...this.tickets.values()].filter((t) => t.status === 'CLOSED');
    const roll = random();
    if (open.length < 2 || roll < 0.05) return this.openTicket();
    const t = pick(open);
    const live = t.messages.filter((m) => !m.deleted);
    if (roll < 0.55) return this.post(t);
    if (roll < 0.7 && live.length) return this.edit(t, pick(live));
    if (roll < 0.78 && live.length) return this.remove(t, pick(live));
    if (roll < 0.84 && t.assignee === null) return this.claim(t);
    if (roll < 0.92) return this.close(t);
    if (closed.length) return this.reopen(pick(closed));
    return this.post(t);
  }

  async openTicket() {
    const key = randomUUID();
    const r = await this.req('POST', '/api/v1/tickets', this.customer.token,
      { topic: `w${this.index} #${this.tickets.size}`, description: 'torture' }, { 'idempotency-key': key });
    if (r.status !== 200) return unexpected(`open: ${r.status} ${json(r.body)}`);
    check(!this.tickets.has(r.body.id) || r.retried, `open with a new key answered an old ticket ${r.body.id}`);
    this.tickets.set(r.body.id, { id: r.body.id, status: 'OPEN', assignee: null, messages: [] });
    acked('open', { ticket: r.body.id, key });
  }

  async post(t) {
    const key = randomUUID();
    const internal = random() < 0.15;
    const who = internal || random() < 0.4 ? this.agent : this.customer;
    const content = `m ${key.slice(0, 8)}`;
    const body = internal ? { content, internal: true } : { content };
    const r = await this.req('POST', `/api/v1/tickets/${t.id}/messages`, who.token, body, { 'idempotency-key': key });
    if (r.status !== 200) return unexpected(`post: ${r.status} ${json(r.body)}`);
    check(r.body.content === content, `post answered another message: ${json(r.body)}`);
    t.messages.push({ id: r.body.id, content, internal, deleted: false });
    acked('post', { ticket: t.id, message: r.body.id, key, internal });
  }

  async edit(t, m) {
    const content = `e ${randomUUID().slice(0, 8)}`;
    const r = await this.req('PATCH', `/api/v1/tickets/${t.id}/messages/${m.id}`, this.agent.token, { content });
    if (r.status !== 200) return unexpected(`edit: ${r.status} ${json(r.body)}`);
    m.content = content;
    acked('edit', { ticket: t.id, message: m.id, content });
  }

  async remove(t, m) {
    const r = await this.req('DELETE', `/api/v1/tickets/${t.id}/messages/${m.id}`, this.agent.token);
    // A retry of a deletion that landed finds the message gone.
    if (!(r.status === 204 || (r.retried && r.status === 404))) return unexpected(`delete: ${r.status} ${json(r.body)}`);
    m.deleted = true;
    acked('delete', { ticket: t.id, message: m.id });
  }

  async claim(t) {
    const r = await this.req('POST', `/api/v1/tickets/${t.id}/claim`, this.agent.token);
    if (r.status !== 200) return unexpected(`claim: ${r.status} ${json(r.body)}`);
    t.assignee = this.agent.id;
    acked('claim', { ticket: t.id });
  }

  async close(t) {
    const who = random() < 0.5 ? this.agent : this.customer;
    const r = await this.req('POST', `/api/v1/tickets/${t.id}/close`, who.token, { reason: 'done' });
    if (!(r.status === 200 || (r.retried && r.status === 409))) return unexpected(`close: ${r.status} ${json(r.body)}`);
    t.status = 'CLOSED';
    acked('close', { ticket: t.id });
  }

  async reopen(t) {
    const r = await this.req('POST', `/api/v1/tickets/${t.id}/reopen`, this.agent.token);
    if (!(r.status === 200 || (r.retried && r.status === 409))) return unexpected(`reopen: ${r.status} ${json(r.body)}`);
    t.status = 'OPEN';
    acked('reopen', { ticket: t.id });
  }
}

// ---------------------------------------------------------------------------------------------
// Sockets: the docs/api.md recipe, resuming with `since` after every drop

class Watcher {
  constructor(name, who, inst, ownerOf) {
    this.name = name;
    this.who = who;
    this.inst = inst;
    this.ownerOf = ownerOf;
    this.got = []; // {event, position}
    this.last = 0;
    this.connects = 0;
    this.problems = [];
    this.socket = io(inst.url, {
      forceNew: true,
      auth: { token: who.token, positions: true, since: 0 },
      reconnectionDelay: 150,
      reconnectionDelayMax: 600,
      randomizationFactor: 0.3,
      timeout: 5000,
    });
    this.socket.onAny((event, payload, at) => {
      if (event === 'resync_required' || event === 'error') {
        this.problems.push(`${event} ${json(payload)}`);
        return;
      }
      if (!at || !Number.isInteger(at.position)) {
        this.problems.push(`${event} without a position`);
        return;
      }
      this.got.push({ event, position: at.position });
      this.last = at.position;
    });
    this.socket.on('connect', () => {
      this.connects += 1;
    });
    this.socket.io.on('reconnect_attempt', () => {
      this.socket.auth = { token: who.token, positions: true, since: this.last };
    });
  }

  close() {
    this.socket.close();
  }
}

const SOCKET_EVENT = {
  TicketOpened: 'ticket_opened', MessagePosted: 'message', MessageEdited: 'edit_message',
  MessageDeleted: 'delete_message', TicketClosed: 'ticket_closed', TicketReopened: 'ticket_updated',
  SupportRoleChanged: 'ticket_updated', IssueLevelChanged: 'ticket_updated',
  AssigneeChanged: 'ticket_updated', TagsChanged: 'ticket_updated',
};
const FOR_EVERYONE = new Set(['SupportRoleChanged', 'IssueLevelChanged', 'AssigneeChanged', 'TicketClosed', 'TicketReopened']);

/** What each audience should receive, from the feed: the broadcaster's rules (ADR 0010, 0020). */
function expectedDeliveries(feed) {
  const owner = new Map();
  const internal = new Set();
  const out = []; // {position, event, owner, staffOnly}
  for (let i = 0; i < feed.length; i += 1) {
    const e = feed[i];
    if (!(e.type in SOCKET_EVENT)) continue;
    if (e.type === 'TicketOpened') owner.set(e.stream_id, e.data.user_id);
    if (e.type === 'MessagePosted' && e.data.internal) internal.add(e.data.message_id);
    const next = feed[i + 1];
    const ticketLevel = FOR_EVERYONE.has(e.type) || e.type === 'TagsChanged';
    if (next && next.stream_id === e.stream_id && next.correlation_id === e.correlation_id
      && next.position === e.position + 1 && ticketLevel && FOR_EVERYONE.has(next.type)) continue;
    const staffOnly = e.type === 'TagsChanged' || (e.data && internal.has(e.data.message_id));
    out.push({ position: e.position, event: SOCKET_EVENT[e.type], owner: owner.get(e.stream_id), staffOnly });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The checks

let previousFeed = [];

async function readFeed(inst) {
  const feed = [];
  for (;;) {
    const after = feed.length ? feed[feed.length - 1].position : 0;
    const r = await definitive(() => inst, 'GET', `/api/v1/events?after=${after}&limit=1000`, ADMIN.token);
    check(r.status === 200, `feed: ${r.status} ${json(r.body)}`);
    feed.push(...r.body);
    if (r.body.length < 1000) return feed;
  }
}

function runVerify() {
  const started = Date.now();
  const env = serverEnv(0);
  const r = spawnSync(ARGS.bin, ['verify'], { env, encoding: 'utf8', timeout: 300000 });
  // Kept, so --trace-secrets searches what verify printed too.
  appendFileSync(path.join(ARGS.out, 'verify.log'), `${r.stdout || ''}${r.stderr || ''}`);
  const ms = Date.now() - started;
  check(r.status === 0, `ticketd verify failed (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  return ms;
}

/**
 * The checker's own test (scripts/torture --self-test): one fault planted in what the harness
 * believes, which the checks must catch.
 */
function inject(kind, workers, watchers) {
  const t = [...workers[0].tickets.values()].find((x) => x.messages.some((m) => !m.deleted));
  if (kind === 'phantom-message') t.messages.push({ id: randomUUID(), content: 'never sent', internal: false, deleted: false });
  else if (kind === 'wrong-content') t.messages.find((m) => !m.deleted).content = 'not what was acknowledged';
  else if (kind === 'lost-socket-event') watchers[0].got.splice(Math.floor(watchers[0].got.length / 2), 1);
  else if (kind === 'doubled-socket-event') watchers[0].got.push(watchers[0].got[watchers[0].got.length - 1]);
  else if (kind === 'leaked-secret') {
    // Planted in the server's log (searched at the end, with --trace-secrets 1).
    if (!SECRETS) throw new Error('--inject leaked-secret needs --trace-secrets 1');
  } else throw new Error(`unknown --inject ${kind}`);
}

async function checkAll(instances, workers, watchers) {
  if (ARGS.inject) inject(ARGS.inject, workers, watchers);
  const inst = instances[0];
  const readStarted = Date.now();
  const feed = await readFeed(inst);

  // Nothing seen before was lost or rewritten.
  check(feed.length >= previousFeed.length, `the feed shrank from ${previousFeed.length} to ${feed.length} events`);
  for (let i = 0; i < previousFeed.length; i += 1) {
    check(feed[i].event_id === previousFeed[i].event_id && feed[i].hash === previousFeed[i].hash,
      `feed position ${previousFeed[i].position} changed: was ${previousFeed[i].event_id}, now ${feed[i].event_id}`);
  }
  previousFeed = feed;

  // Gapless positions and versions.
  const versions = new Map();
  feed.forEach((e, i) => {
    check(e.position === i + 1, `position gap: event ${i} has position ${e.position}`);
    const v = (versions.get(e.stream_id) || 0) + 1;
    check(e.version === v, `stream ${e.stream_id}: version ${e.version} where ${v} was due`);
    versions.set(e.stream_id, v);
  });

  // Exactly once: one TicketOpened per acknowledged ticket, one MessagePosted per message.
  const opened = new Map();
  const posted = new Map();
  for (const e of feed) {
    if (e.type === 'TicketOpened') opened.set(e.stream_id, (opened.get(e.stream_id) || 0) + 1);
    if (e.type === 'MessagePosted') posted.set(e.data.message_id, (posted.get(e.data.message_id) || 0) + 1);
  }
  let tickets = 0;
  let messages = 0;
  for (const w of workers) {
    for (const t of w.tickets.values()) {
      tickets += 1;
      check(opened.get(t.id) === 1, `ticket ${t.id}: ${opened.get(t.id) || 0} TicketOpened events`);
      for (const m of t.messages) {
        messages += 1;
        check(posted.get(m.id) === 1, `message ${m.id}: ${posted.get(m.id) || 0} MessagePosted events`);
      }
    }
  }
  check(opened.size === tickets, `${opened.size} tickets in the feed, ${tickets} acknowledged`);
  check(posted.size === messages, `${posted.size} messages in the feed, ${messages} acknowledged`);

  // The read API: each worker's tickets as acknowledged.
  for (const w of workers) {
    const listed = await walk(inst, `/api/v1/tickets?limit=200`, w.customer.token);
    check(json(listed.map((t) => t.id).sort()) === json([...w.tickets.keys()].sort()),
      `worker ${w.index}: the customer's ticket list differs from the acknowledged tickets`);
    for (const t of w.tickets.values()) {
      const r = await definitive(() => inst, 'GET', `/api/v1/tickets/${t.id}`, w.agent.token);
      check(r.status === 200, `GET ticket ${t.id}: ${r.status}`);
      check(r.body.status === t.status, `ticket ${t.id}: status ${r.body.status}, acknowledged ${t.status}`);
      check(r.body.assignee_id === t.assignee, `ticket ${t.id}: assignee ${r.body.assignee_id}, acknowledged ${t.assignee}`);
      const got = await walk(inst, `/api/v1/tickets/${t.id}/messages?limit=200`, w.agent.token);
      const want = t.messages.filter((m) => !m.deleted);
      check(json(got.map((m) => [m.id, m.content])) === json(want.map((m) => [m.id, m.content])),
        `ticket ${t.id}: messages ${json(got.map((m) => [m.id, m.content]))}, acknowledged ${json(want.map((m) => [m.id, m.content]))}`);
    }
  }

  const readMs = Date.now() - readStarted;
  const verifyMs = runVerify();
  const socketStarted = Date.now();

  // Sockets: exactly the deliveries concerning them, once, in order.
  const deliveries = expectedDeliveries(feed);
  const waitUntil = Date.now() + 20000;
  for (const s of watchers) {
    const want = deliveries.filter((d) => s.who.role === 'ADMIN' || s.who.role === 'AGENT' || (!d.staffOnly && d.owner === s.who.id));
    const lastWanted = want.length ? want[want.length - 1].position : 0;
    while (s.last < lastWanted && Date.now() < waitUntil) await sleep(50);
    await sleep(0);
    check(s.problems.length === 0, `socket ${s.name}: ${s.problems.join('; ')}`);
    const got = s.got.map((d) => `${d.position}:${d.event}`);
    const exp = want.map((d) => `${d.position}:${d.event}`);
    if (json(got) !== json(exp)) {
      const gotSet = new Set(got);
      const expSet = new Set(exp);
      const missing = exp.filter((x) => !gotSet.has(x)).slice(0, 10);
      const extra = got.filter((x) => !expSet.has(x)).slice(0, 10);
      const dup = got.filter((x, i) => got.indexOf(x) !== i).slice(0, 10);
      throw new CheckFailed(`socket ${s.name}: received ${got.length}, expected ${exp.length}; missing ${json(missing)}, extra ${json(extra)}, twice ${json(dup)}`);
    }
  }
  return { events: feed.length, tickets, messages, readMs, verifyMs, socketWaitMs: Date.now() - socketStarted, socketDeliveries: watchers.reduce((n, s) => n + s.got.length, 0) };
}

// ---------------------------------------------------------------------------------------------
// The run

async function restartDatabase() {
  const cmd = process.env.TORTURE_DB_RESTART;
  if (!cmd) throw new Error('--db-restart-every needs TORTURE_DB_RESTART (set by scripts/torture)');
  const started = Date.now();
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) throw new CheckFailed(`database restart failed: ${r.stdout}${r.stderr}`);
  return Date.now() - started;
}

async function main() {
  const started = Date.now();
  const instances = [];
  for (let i = 0; i < ARGS.instances; i += 1) instances.push(new Instance(i, await freePort()));
  const result = {
    store: ARGS.store, instances: ARGS.instances, cycles_planned: ARGS.cycles, duration_secs: ARGS.duration,
    workers: ARGS.workers, seed: ARGS.seed, bin: ARGS.bin, started_at: new Date(started).toISOString(),
    cycles: [], ok: false, failure: null,
  };
  const save = () => writeFileSync(path.join(ARGS.out, 'result.json'), json({ ...result, stats }, null, 2));
  let workers = [];
  let watchers = [];
  let probing = null;
  let probeStop = false;
  const probeCount = { requests: 0, failed: 0, sockets: 0 };
  try {
    for (const inst of instances) await inst.start();
    if (SECRETS) {
      const bad = secretsRun.badTokens(sign, (claims, key) => {
        const t = secretsRun.hmacSign(claims, key);
        JWTS.add(t);
        return t;
      });
      for (const t of bad) JWTS.add(t);
      const good = [ADMIN.token, user('prober', 'CUSTOMER').token];
      probing = secretsRun.probe(() => pick(instances).url, good, bad, SECRETS, () => probeStop, probeCount);
    }
    workers = Array.from({ length: ARGS.workers }, (_, i) => new Worker(i, instances));
    watchers = [
      ...instances.map((inst, i) => new Watcher(`admin@${i}`, ADMIN, inst)),
      ...workers.map((w) => new Watcher(`customer ${w.index}`, w.customer, w.inst())),
    ];
    for (let c = 1; c <= ARGS.cycles; c += 1) {
      const ackedBefore = Object.values(stats.acked).reduce((a, b) => a + b, 0);
      const slowBefore = stats.slow.length;
      for (const w of workers) w.run();
      const killAfter = 300 + random() * ARGS.duration * 1000;
      await sleep(killAfter);
      const cycle = { cycle: c, kill_after_ms: Math.round(killAfter) };
      const dbRestart = ARGS.dbRestartEvery > 0 && c % ARGS.dbRestartEvery === 0;
      if (dbRestart) {
        cycle.killed = 'database';
        cycle.db_restart_ms = await restartDatabase();
      } else {
        const victim = pick(instances);
        cycle.killed = `instance ${victim.index}`;
        await victim.kill9();
        // The load keeps hitting the dead instance (and the live one) while it is down.
        await sleep(random() * 500);
        cycle.ready_ms = await victim.start();
      }
      // Let the load run on the restarted server a little before the checks.
      await sleep(300 + random() * 700);
      let t0 = Date.now();
      await Promise.all(workers.map((w) => w.pause()));
      cycle.pause_ms = Date.now() - t0;
      t0 = Date.now();
      const ackedAfter = Object.values(stats.acked).reduce((a, b) => a + b, 0);
      cycle.acked_in_cycle = ackedAfter - ackedBefore;
      Object.assign(cycle, await checkAll(instances, workers, watchers));
      cycle.check_ms = Date.now() - t0;
      cycle.socket_reconnects = watchers.reduce((n, s) => n + s.connects, 0) - watchers.length;
      cycle.retries_so_far = stats.retries;
      const slow = stats.slow.slice(slowBefore);
      cycle.slow_requests = slow.length;
      cycle.slowest_ms = slow.reduce((m, x) => Math.max(m, x.ms), 0);
      check(stats.unexpected.length === 0, `unexpected answers: ${stats.unexpected.slice(0, 5).join(' | ')}`);
      result.cycles.push(cycle);
      log(json(cycle));
      save();
    }
    result.ok = true;
  } catch (e) {
    result.failure = e instanceof CheckFailed ? e.message : String(e.stack || e);
    log(`FAIL ${result.failure}`);
  } finally {
    for (const w of workers) w.paused = true;
    for (const s of watchers) s.close();
    for (const inst of instances) await inst.stop();
    result.finished_at = new Date().toISOString();
    probeStop = true;
    if (probing) await probing;
    result.wall_secs = Math.round((Date.now() - started) / 100) / 10;
    result.acked = stats.acked;
    save();
  }
  if (SECRETS) await searchSecrets(result, probeCount, save);
  log(`${result.ok ? 'PASS' : 'FAIL'} torture ${ARGS.store} x${ARGS.instances}: ${result.cycles.length}/${ARGS.cycles} cycles, acked ${json(stats.acked)}, ${stats.retries} retries, ${result.wall_secs} s`);
  process.exit(result.ok ? 0 : 1);
}

/** --trace-secrets: every log of the run searched for every secret; a hit fails the run. */
async function searchSecrets(result, probeCount, save) {
  STUB.close();
  const s = SECRETS;
  const jwts = [...JWTS];
  const env = STUB.env;
  const kinds = [
    { kind: 'JWT secret', values: [SECRET] },
    { kind: 'JWTs sent (whole)', values: jwts },
    { kind: 'JWT signatures', values: jwts.map((t) => t.split('.')[2]) },
    { kind: 'JWT-shaped text (eyJhbGci…)', values: ['eyJhbGci'] },
    { kind: 'Authorization header values', values: [...jwts.map((t) => `Bearer ${t}`), `Bot ${s.botToken}`, `Bearer ${s.metricsToken}`] },
    { kind: 'METRICS_TOKEN (and the wrong one sent)', values: [s.metricsToken, s.wrongMetricsToken] },
    { kind: 'Discord bot token', values: [s.botToken, s.botToken.split('.').slice(1).join('.')] },
    { kind: 'error webhook URLs', values: [env.ERROR_WEBHOOK_URL, env.ERROR_BOT_WEBHOOK_URL] },
    { kind: 'error webhook tokens', values: [s.errorHookToken, s.bridgeHookToken] },
    { kind: 'partner webhook URL and its tokens', values: [env.WEBHOOK_URL, s.partnerPathToken, s.partnerQueryToken] },
    { kind: 'partner webhook secret (and its key)', values: [s.webhookSecret, s.webhookKey] },
  ];
  // The search must be able to fail: a log planted with one value of each kind must hit every kind.
  const planted = path.join(ARGS.out, 'planted');
  mkdirSync(planted, { recursive: true });
  writeFileSync(path.join(planted, 'planted.log'), kinds.map((k) => `x ${k.values[k.values.length - 1]} y`).join('\n'));
  const selfTest = await secretsRun.scan(planted, kinds);
  rmSync(planted, { recursive: true, force: true });
  const blind = selfTest.kinds.filter((k) => k.hits === 0).map((k) => k.kind);
  if (ARGS.inject === 'leaked-secret') {
    appendFileSync(path.join(ARGS.out, 'server-0.log'), `planted by --inject: Authorization: Bot ${s.botToken}\n`);
  }
  const found = await secretsRun.scan(ARGS.out, kinds);
  found.self_test = blind.length === 0 ? 'every kind found in a planted log' : `blind to: ${blind.join(', ')}`;
  found.stub = STUB.seen;
  found.probe = probeCount;
  writeFileSync(path.join(ARGS.out, 'secrets.json'), json(found, null, 2));
  log(`secrets: searched ${found.lines.toLocaleString('en')} lines, ${(found.bytes / 2 ** 20).toFixed(1)} MiB in ${found.files.join(', ')}`);
  for (const k of found.kinds) {
    log(`  ${k.kind}: ${k.values} value(s), ${k.hits} hit(s)${k.examples.length ? `: ${k.examples[0]}` : ''}`);
  }
  log(`  the stub saw: ${json(STUB.seen)}; the prober: ${json(probeCount)}; self-test: ${found.self_test}`);
  // A search that saw nothing proves nothing: the servers must have logged at trace level, and
  // the bot must have used its token.
  const traced = found.lines > 1000 && STUB.seen.identify > 0 && STUB.seen.botAuth > 0 && blind.length === 0;
  result.secrets = { lines: found.lines, bytes: found.bytes, leaks: found.leaks, traced };
  if (found.leaks > 0 || !traced) {
    result.ok = false;
    result.failure = result.failure || (found.leaks > 0
      ? `${found.leaks} log line(s) carry a secret (see secrets.json)`
      : `the secrets search proves nothing: ${found.lines} lines, ${STUB.seen.identify} identifies, ${STUB.seen.botAuth} bot calls, ${found.self_test}`);
    log(`FAIL ${result.failure}`);
  }
  save();
}

const watchdog = setTimeout(() => {
  console.log('FAIL watchdog: the run took too long');
  process.exit(2);
}, Math.max(600, ARGS.cycles * (ARGS.duration + 60)) * 1000);
watchdog.unref();
main();
