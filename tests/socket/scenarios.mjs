// Socket.IO black-box scenarios for ticketd, one per run:
//
//   BASE_URL=http://127.0.0.1:5000 JWT_SECRET=... node tests/socket/scenarios.mjs <scenario>
//
// Each scenario talks to a running server with the official `socket.io-client` (as the seed's
// example does) and raises events through the REST API (built-in `fetch`); tokens are HS256 JWTs
// minted here with node's `crypto`. It prints what every socket observed, then `PASS <scenario>`
// and exits 0, or `FAIL <scenario>: <why>` and exits 1. Every wait has a timeout, and a watchdog
// ends the whole run, so it never hangs. `node tests/socket/scenarios.mjs` lists the scenarios.
// tests/socket_io.rs runs each one against its own in-process server.

import { createHmac, randomBytes } from 'node:crypto';
import { io } from 'socket.io-client';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const JWT_SECRET = process.env.JWT_SECRET || '';
/** How long any single wait may take. */
const WAIT_MS = 5000;
/** How long a socket must stay silent to count as having received nothing. */
const QUIET_MS = 800;
/** The whole scenario's budget (the Rust side allows 60 s). */
const WATCHDOG_MS = 45000;

/** The seed's Message Object keys, in order; internal notes add `internal`. */
const MESSAGE_KEYS = ['id', 'ticket_id', 'author_id', 'author_name', 'content', 'attachments', 'created_at', 'updated_at'];
/** The seed's Ticket Object keys, in order. */
const BASE_TICKET_KEYS = ['id', 'user_id', 'topic', 'description', 'status', 'created_at', 'updated_at', 'user_role', 'support_role', 'issue_level', 'assignee_id', 'assignee_name'];
const TICKET_KEYS = [...BASE_TICKET_KEYS, 'feedback'];
/** Staff also receive the ticket's tags. */
// Staff also receive the tags, the first answer and the service levels (ADR 0025).
const STAFF_TICKET_KEYS = [...BASE_TICKET_KEYS, 'tags', 'feedback', 'first_response_at', 'sla'];
/** The events a ticket change becomes. */
const TICKET_EVENTS = ['message', 'edit_message', 'delete_message', 'ticket_closed', 'ticket_updated'];

// ---------------------------------------------------------------------------------------------
// Failing, logging, waiting

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

const log = (...args) => console.log(...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const json = (value) => JSON.stringify(value);

function short(value, max = 240) {
  const text = value === undefined ? 'undefined' : json(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Polls `probe` until it returns something truthy, which is returned; fails after `ms`. */
async function waitFor(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(15);
  }
}

/** Both JSON texts must be identical: same keys, same order, same values. */
function same(got, want, what) {
  check(json(got) === json(want), `${what}:\n    got      ${json(got)}\n    expected ${json(want)}`);
}

function keysExactly(value, keys, what) {
  check(value !== null && typeof value === 'object' && !Array.isArray(value), `${what} is not an object: ${short(value)}`);
  same(Object.keys(value), keys, `${what}: object keys`);
}

// ---------------------------------------------------------------------------------------------
// Tokens

const b64url = (text) => Buffer.from(text).toString('base64url');

/** Signs `claims` with HS256, the way a partner backend would. */
function sign(claims, secret = JWT_SECRET, header = { alg: 'HS256', typ: 'JWT' }) {
  const signingInput = `${b64url(json(header))}.${b64url(json(claims))}`;
  const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${signature}`;
}

const nowSecs = () => Math.floor(Date.now() / 1000);

/** Per-run suffix so user ids never collide with another run's. */
const RUN = randomBytes(3).toString('hex');

/** A user with a valid token without `exp`; `extra` claims are merged in. */
function user(name, role, extra = {}) {
  const id = `${name}-${RUN}`;
  const claims = { id, username: name, email: `${name}@example.com`, role, iat: nowSecs(), ...extra };
  return { id, name, role, claims, token: sign(claims) };
}

// ---------------------------------------------------------------------------------------------
// REST

async function api(method, path, token, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(BASE_URL + path, {
      method,
      headers,
      body: body === undefined ? undefined : json(body),
      signal: AbortSignal.timeout(WAIT_MS),
    });
  } catch (e) {
    fail(`${method} ${path} failed: ${e.message}`);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed };
}

async function expectStatus(status, method, path, token, body) {
  const reply = await api(method, path, token, body);
  check(reply.status === status, `${method} ${path}: expected ${status}, got ${reply.status} ${short(reply.body)}`);
  return reply.body;
}

const rest = {
  createTicket: (u, topic) =>
    expectStatus(200, 'POST', '/api/v1/tickets', u.token, { topic, description: `Help with ${topic}` }),
  post: (u, t, content, extra = {}) =>
    expectStatus(200, 'POST', `/api/v1/tickets/${t.id}/messages`, u.token, { content, ...extra }),
  edit: (u, t, m, content) =>
    expectStatus(200, 'PATCH', `/api/v1/tickets/${t.id}/messages/${m.id}`, u.token, { content }),
  remove: (u, t, m) => expectStatus(204, 'DELETE', `/api/v1/tickets/${t.id}/messages/${m.id}`, u.token),
  patch: (u, t, body) => expectStatus(200, 'PATCH', `/api/v1/tickets/${t.id}`, u.token, body),
  close: (u, t) => expectStatus(200, 'POST', `/api/v1/tickets/${t.id}/close`, u.token),
  reopen: (u, t) => expectStatus(200, 'POST', `/api/v1/tickets/${t.id}/reopen`, u.token),
  messages: (u, t) => expectStatus(200, 'GET', `/api/v1/tickets/${t.id}/messages?limit=200`, u.token),
};

// ---------------------------------------------------------------------------------------------
// Sockets

/** Every socket opened, to close them at the end. */
const observers = [];

/**
 * Records everything `socket` receives, in order, and prints it. `cursor` counts the ticket
 * events already checked by `expectNext`.
 */
function observe(name, socket) {
  const token = socket.auth?.token || socket.io?.opts?.query?.token;
  const o = { name, socket, events: [], disconnects: [], connects: 0, connectErrors: [], cursor: 0, role: roleOf(token) };
  socket.onAny((event, ...args) => {
    o.events.push({ event, data: args[0], args, at: Date.now() });
    log(`  [${name}] <- ${event} ${short(args.length > 1 ? args : args[0])}`);
  });
  socket.on('connect', () => {
    o.connects += 1;
    o.connectedAt = Date.now();
    log(`  [${name}] connected (sid ${socket.id}, transport ${socket.io.engine?.transport?.name})`);
  });
  socket.on('disconnect', (reason) => {
    o.disconnects.push({ reason, at: Date.now() });
    log(`  [${name}] disconnected: ${reason}`);
  });
  socket.on('connect_error', (e) => {
    o.connectErrors.push(e.message);
    log(`  [${name}] connect_error: ${e.message}`);
  });
  observers.push(o);
  return o;
}

/** A new connection (never shared with another socket) with `opts`, observed as `name`. */
function connect(name, opts = {}) {
  const socket = io(BASE_URL, {
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    timeout: WAIT_MS,
    ...opts,
  });
  return observe(name, socket);
}

async function connected(...os) {
  for (const o of os) await waitFor(`${o.name} to connect`, () => o.connects > 0);
}

const ticketEvents = (o) => o.events.filter((e) => TICKET_EVENTS.includes(e.event));
const errorEvents = (o) => o.events.filter((e) => e.event === 'error');

/** The role in a token's claims, if it is one of ours. */
function roleOf(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).role;
  } catch {
    return undefined;
  }
}

const isStaff = (o) => o.role === 'AGENT' || o.role === 'ADMIN';

/**
 * `expected` (a REST answer, maybe given to someone else) as `o` must receive it: a ticket
 * reaches customers without its tags and staff with them. A customer receiving tags fails.
 */
function asSeenBy(o, data, expected) {
  if (expected === undefined || expected === null || typeof expected !== 'object' || !('status' in expected)) return expected;
  if (isStaff(o)) {
    // A customer's answer lacks what only staff see: the tags (none here) and the service
    // levels, which the payload itself is taken for (they are not what these scenarios test).
    const staffOnly = { tags: [], first_response_at: data?.first_response_at ?? null, sla: data?.sla ?? null };
    return Object.fromEntries(STAFF_TICKET_KEYS.map((k) => [k, k in expected ? expected[k] : staffOnly[k]]));
  }
  for (const k of ['tags', 'first_response_at', 'sla']) {
    check(!(k in data), `${o.name} (a customer) received a ticket's ${k}: ${short(data)}`);
  }
  return Object.fromEntries(TICKET_KEYS.map((k) => [k, expected[k]]));
}

/** The next unchecked ticket event must be `event` (and its payload `expected`, when given). */
async function expectNext(o, event, expected, what = event) {
  const e = await waitFor(`${o.name} to receive ${what}`, () => ticketEvents(o)[o.cursor]);
  o.cursor += 1;
  check(e.event === event, `${o.name}: expected ${what} next, got ${e.event} ${short(e.data)}`);
  check(e.args.length === 1, `${o.name}: ${event} carries ${e.args.length} arguments, expected 1`);
  if (expected !== undefined) same(e.data, asSeenBy(o, e.data, expected), `${o.name}: ${what} payload vs the REST answer`);
  return e.data;
}

/**
 * Like `expectNext` for a socket that asked for positions: the event carries a second argument
 * `{position, event_id}`, positions grow strictly, and `o.position` keeps the last one.
 */
async function expectNextAt(o, event, expected, what = event) {
  const e = await waitFor(`${o.name} to receive ${what}`, () => ticketEvents(o)[o.cursor]);
  o.cursor += 1;
  check(e.event === event, `${o.name}: expected ${what} next, got ${e.event} ${short(e.data)}`);
  check(e.args.length === 2, `${o.name}: ${event} carries ${e.args.length} argument(s), expected 2 (payload, position)`);
  if (expected !== undefined) same(e.data, asSeenBy(o, e.data, expected), `${o.name}: ${what} payload vs the REST answer`);
  const at = e.args[1];
  keysExactly(at, ['position', 'event_id'], `${o.name}: ${what} position`);
  check(Number.isInteger(at.position) && at.position > 0, `${o.name}: ${what} position ${short(at)}`);
  check(o.position === undefined || at.position > o.position, `${o.name}: ${what} at ${at.position}, not after ${o.position}`);
  o.position = at.position;
  return e.data;
}

/** The raw state a two-phase scenario hands to its second phase (tests/socket_io.rs). */
const STATE_FILE = process.env.STATE_FILE || '';
async function saveState(state) {
  check(STATE_FILE !== '', 'STATE_FILE must be set for a two-phase scenario');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(STATE_FILE, json(state));
}
async function loadState() {
  check(STATE_FILE !== '', 'STATE_FILE must be set for a two-phase scenario');
  const { readFile } = await import('node:fs/promises');
  return JSON.parse(await readFile(STATE_FILE, 'utf8'));
}

/** After a quiet period, none of `os` has an unchecked ticket event. */
async function expectNothingMore(os, ms = QUIET_MS) {
  await sleep(ms);
  for (const o of os) {
    const extra = ticketEvents(o).slice(o.cursor);
    check(
      extra.length === 0,
      `${o.name} received ${extra.length} unexpected event(s): ${extra.map((e) => `${e.event} ${short(e.data, 160)}`).join('; ')}`,
    );
  }
}

function expectNoErrors(...os) {
  for (const o of os) {
    const errors = errorEvents(o);
    check(errors.length === 0, `${o.name} received error event(s): ${errors.map((e) => short(e.data)).join('; ')}`);
  }
}

/** An `error` event `{message: <non-empty text>}` and nothing else in it. */
async function expectErrorEvent(o, ms = WAIT_MS) {
  const e = await waitFor(`${o.name} to receive an error event`, () => errorEvents(o)[0], ms);
  keysExactly(e.data, ['message'], `${o.name}: error event`);
  check(typeof e.data.message === 'string' && e.data.message.trim() !== '', `${o.name}: error message is not a text: ${short(e.data)}`);
  return e;
}

async function authorizeAck(o, payload) {
  try {
    const ack = await o.socket.timeout(WAIT_MS).emitWithAck('authorize', payload);
    if (ack?.ok) o.role = ack.user.role;
    return ack;
  } catch (e) {
    fail(`${o.name}: no ack for authorize within ${WAIT_MS} ms (${e.message})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const scenarios = {
  /** A claim reaches the owner and staff; a change of tags alone reaches staff only, and no customer ever receives tags. */
  async claims_and_tags() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Mine or yours');
    const c = connect('customer', { auth: { token: customer.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    await connected(c, s);
    const claimed = await expectStatus(200, 'POST', `/api/v1/tickets/${ticket.id}/claim`, agent.token);
    for (const o of [c, s]) {
      const t = await expectNext(o, 'ticket_updated', claimed, 'ticket_updated (claimed)');
      check(t.assignee_id === agent.id, `${o.name}: the holder is ${short(t.assignee_id)}`);
    }
    const tagged = await rest.patch(agent, ticket, { tags: ['VIP'] });
    const t = await expectNext(s, 'ticket_updated', tagged, 'ticket_updated (tags)');
    same(t.tags, ['vip'], 'staff see the tags');
    const both = await rest.patch(agent, ticket, { tags: ['vip', 'billing'], issue_level: 'URGENT' });
    for (const o of [c, s]) await expectNext(o, 'ticket_updated', both, 'ticket_updated (level and tags)');
    await expectNothingMore([c, s]);
    expectNoErrors(c, s);
  },
  /**
   * Positions are opt-in: a socket with `auth.positions` gets `{position, event_id}` after each
   * payload, the id of that very event in the log (the feed shows it), while a socket beside it
   * that did not ask gets the seed's one argument.
   */
  async positions_opt_in() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const admin = user('ada', 'ADMIN');
    const ticket = await rest.createTicket(customer, 'Counting');
    const plain = connect('customer (plain)', { auth: { token: customer.token } });
    const withPositions = connect('customer (positions)', { auth: { token: customer.token, positions: true } });
    const byEvent = connect('agent (positions by authorize)', {});
    await connected(plain, withPositions, byEvent);
    const ack = await authorizeAck(byEvent, { token: agent.token, positions: true });
    check(ack.ok === true, `authorize with positions: ${short(ack)}`);

    const m1 = await rest.post(agent, ticket, 'one');
    await expectNext(plain, 'message', m1);
    for (const o of [withPositions, byEvent]) await expectNextAt(o, 'message', m1);
    const closed = await rest.close(customer, ticket);
    await expectNext(plain, 'ticket_closed', closed);
    for (const o of [withPositions, byEvent]) await expectNextAt(o, 'ticket_closed', closed);
    check(withPositions.position === byEvent.position, 'both sockets were told the same position');

    const last = ticketEvents(withPositions).at(-1).args[1];
    const feed = await expectStatus(200, 'GET', `/api/v1/events?after=${last.position - 1}&limit=1`, admin.token);
    check(feed.length === 1 && feed[0].event_id === last.event_id && feed[0].type === 'TicketClosed',
      `the feed at ${last.position}: ${short(feed)}`);
    await expectNothingMore([plain, withPositions, byEvent]);
    expectNoErrors(plain, withPositions, byEvent);
  },

  /**
   * The recipe of docs/api.md with the official client: keep the last position, put it into
   * `socket.auth` on `reconnect_attempt`. The transport drops for a while; what happened
   * meanwhile arrives once, in order, then the live events.
   */
  async resume_recipe() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Patchy signal');
    const socket = io(BASE_URL, {
      forceNew: true,
      auth: { token: customer.token, positions: true },
      reconnectionDelay: 1500,
      reconnectionDelayMax: 1500,
      randomizationFactor: 0,
    });
    // ---- the recipe ----
    let last = null;
    socket.onAny((event, ...args) => {
      const at = args[1];
      if (at && Number.isInteger(at.position)) last = at.position;
    });
    socket.io.on('reconnect_attempt', () => {
      socket.auth = last === null ? { token: customer.token, positions: true } : { token: customer.token, since: last };
    });
    // ---- end of the recipe ----
    const c = observe('customer (recipe)', socket);
    await connected(c);
    const m0 = await rest.post(agent, ticket, 'before the drop');
    await expectNextAt(c, 'message', m0);

    log('  -- closing the transport under the client (socket.io.engine.close())');
    socket.io.engine.close();
    await waitFor('the customer to see the drop', () => c.disconnects.length === 1);
    const m1 = await rest.post(agent, ticket, 'while away 1');
    const m2 = await rest.post(customer, ticket, 'while away 2 (from another device)');
    const m3 = await rest.post(agent, ticket, 'while away 3');
    const e1 = await rest.edit(agent, ticket, m1, 'while away 1 (edited)');
    const closed = await rest.close(agent, ticket);
    await waitFor('the customer to reconnect by itself', () => c.connects === 2, 8000);
    for (const [event, payload] of [['message', m1], ['message', m2], ['message', m3], ['edit_message', e1], ['ticket_closed', closed]]) {
      await expectNextAt(c, event, payload, `${event} (missed)`);
    }
    const reopened = await rest.reopen(agent, ticket);
    await expectNextAt(c, 'ticket_updated', reopened, 'ticket_updated (live, after the replay)');
    await expectNothingMore([c]);
    expectNoErrors(c);
  },

  /**
   * First half of a resume across a restart or to another instance: sockets with positions see
   * one message, go away, and five things happen to the customer's ticket (plus an internal note
   * and another customer's message, which only staff may see). The second half,
   * `resume_phase2`, runs against the restarted server or the other instance.
   */
  async resume_phase1() {
    const customer = user('alice', 'CUSTOMER');
    const other = user('carol', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Resume me');
    const elsewhere = await rest.createTicket(other, 'Not yours');
    const c = connect('customer', { auth: { token: customer.token, positions: true } });
    const s = connect('agent', { auth: { token: agent.token, positions: true } });
    await connected(c, s);
    const m0 = await rest.post(agent, ticket, 'seen live');
    for (const o of [c, s]) await expectNextAt(o, 'message', m0);
    for (const o of [c, s]) o.socket.disconnect();

    const m1 = await rest.post(agent, ticket, 'missed 1');
    const note = await rest.post(agent, ticket, 'staff only', { internal: true });
    const m2 = await rest.post(customer, ticket, 'missed 2');
    const foreign = await rest.post(other, elsewhere, 'another customer');
    const m3 = await rest.post(agent, ticket, 'missed 3');
    const e1 = await rest.edit(agent, ticket, m1, 'missed 1 (edited)');
    const closed = await rest.close(agent, ticket);
    await saveState({
      customer, agent, ticket,
      since: { customer: c.position, agent: s.position },
      expected: {
        customer: [['message', m1], ['message', m2], ['message', m3], ['edit_message', e1], ['ticket_closed', closed]],
        agent: [['message', m1], ['message', note], ['message', m2], ['message', foreign], ['message', m3], ['edit_message', e1], ['ticket_closed', closed]],
      },
    });
  },

  /**
   * Second half: the customer resumes through the handshake, the agent through `authorize`
   * (whose ack comes before the replay); each receives exactly what it missed and may see, in
   * order, then a live event.
   */
  async resume_phase2() {
    const state = await loadState();
    const { customer, agent, ticket } = state;
    const c = connect('customer (resumed)', { auth: { token: customer.token, since: state.since.customer } });
    const s = connect('agent (resumed)', {});
    c.position = state.since.customer;
    s.position = state.since.agent;
    await connected(c, s);
    const ack = await authorizeAck(s, { token: agent.token, since: state.since.agent });
    check(ack.ok === true, `authorize with since: ${short(ack)}`);
    for (const [who, o] of [['customer', c], ['agent', s]]) {
      for (const [event, payload] of state.expected[who]) await expectNextAt(o, event, payload, `${event} (missed)`);
    }
    const reopened = await rest.reopen(agent, ticket);
    for (const o of [c, s]) await expectNextAt(o, 'ticket_updated', reopened, 'ticket_updated (live)');
    await expectNothingMore([c, s]);
    expectNoErrors(c, s);
  },

  /**
   * A socket further behind than SOCKET_RESUME_MAX_EVENTS (3 in this test) is told to re-read
   * the REST API (`resync_required` with the head) and receives the live events from there.
   */
  async resume_far_behind() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const admin = user('ada', 'ADMIN');
    const ticket = await rest.createTicket(customer, 'Long ago');
    for (let i = 0; i < 4; i += 1) await rest.post(agent, ticket, `old ${i}`);
    const head = await expectStatus(200, 'GET', '/readyz', admin.token);
    const c = connect('customer (far behind)', { auth: { token: customer.token, since: 0 } });
    await connected(c);
    const resync = await waitFor('resync_required', () => c.events.find((e) => e.event === 'resync_required'));
    keysExactly(resync.data, ['position'], 'resync_required');
    check(resync.data.position === head.position, `resync_required at ${resync.data.position}, the head is ${head.position}`);
    c.position = resync.data.position;
    const live = await rest.post(agent, ticket, 'new');
    await expectNextAt(c, 'message', live, 'message (live after the resync)');
    await expectNothingMore([c]);
    expectNoErrors(c);
  },

  /** A `since` beyond the head replays nothing; one that is not a non-negative integer is refused like a bad token. */
  async resume_bad_since() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Odd positions');
    const beyond = connect('customer (since beyond the head)', { auth: { token: customer.token, since: 1e12 } });
    const refused = [];
    for (const since of [-1, 1.5, '7', 'soon', { at: 1 }, true]) {
      refused.push(connect(`customer (handshake since ${json(since)})`, { auth: { token: customer.token, since } }));
    }
    const byEvent = connect('customer (authorize since -5)', {});
    await connected(beyond, byEvent, ...refused);
    for (const o of refused) await expectErrorEvent(o);
    const ack = await authorizeAck(byEvent, { token: customer.token, since: -5 });
    check(ack.ok === false && typeof ack.error === 'string' && /since/.test(ack.error), `authorize with since -5: ${short(ack)}`);
    await expectErrorEvent(byEvent);
    const m = await rest.post(agent, ticket, 'live');
    await expectNextAt(beyond, 'message', m, 'message (live, nothing replayed)');
    await expectNothingMore([beyond, byEvent, ...refused]);
  },
  /** The seed's example, unchanged in substance, then every event type raised through REST. */
  async seed_example() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Printer on fire');

    // ---- the seed's "Example Code for Socket Connection" ----
    const SOCKET_URL = BASE_URL;
    const token = customer.token;
    const seen = [];
    const socket = io(SOCKET_URL, {
      query: { token },
    });
    socket.on('message', (data) => {
      console.log('New message:', data);
      seen.push('message');
    });
    socket.on('edit_message', (data) => {
      console.log('Message edited:', data);
      seen.push('edit_message');
    });
    socket.on('delete_message', (data) => {
      console.log('Message Deleted:', data);
      seen.push('delete_message');
    });
    socket.on('ticket_closed', (data) => {
      console.log('Ticket closed:', data);
      seen.push('ticket_closed');
    });
    // Authorize after connecting
    socket.emit('authorize', { token });
    // ---- end of the seed's example ----
    socket.on('ticket_updated', () => seen.push('ticket_updated'));

    const c = observe('customer (seed example)', socket);
    const s = connect('agent', { auth: { token: agent.token } });
    await connected(c, s);
    await sleep(300); // the example's buffered `authorize` is handled too
    const both = [c, s];

    const m1 = await rest.post(agent, ticket, 'Hello from support');
    keysExactly(m1, MESSAGE_KEYS, 'REST message');
    for (const o of both) keysExactly(await expectNext(o, 'message', m1), MESSAGE_KEYS, `${o.name}: message`);

    const m2 = await rest.post(customer, ticket, 'It is still burning', {
      attachments: ['http://example.com/attachment1.png'],
    });
    for (const o of both) await expectNext(o, 'message', m2, 'message (from the customer)');

    const e1 = await rest.edit(agent, ticket, m1, 'Hello from support (edited)');
    for (const o of both) keysExactly(await expectNext(o, 'edit_message', e1), MESSAGE_KEYS, `${o.name}: edit_message`);

    await rest.remove(agent, ticket, m1);
    // A deletion is announced with the message as it was.
    for (const o of both) keysExactly(await expectNext(o, 'delete_message', e1), MESSAGE_KEYS, `${o.name}: delete_message`);

    const t1 = await rest.patch(agent, ticket, { issue_level: 'URGENT' });
    for (const o of both) keysExactly(await expectNext(o, 'ticket_updated', t1, 'ticket_updated (issue_level)'), isStaff(o) ? STAFF_TICKET_KEYS : TICKET_KEYS, `${o.name}: ticket_updated`);

    const t2 = await rest.patch(agent, ticket, { support_role: 'TECHNICAL' });
    for (const o of both) await expectNext(o, 'ticket_updated', t2, 'ticket_updated (support_role)');

    const t3 = await rest.close(customer, ticket);
    for (const o of both) keysExactly(await expectNext(o, 'ticket_closed', t3), isStaff(o) ? STAFF_TICKET_KEYS : TICKET_KEYS, `${o.name}: ticket_closed`);

    const t4 = await rest.reopen(agent, ticket);
    for (const o of both) await expectNext(o, 'ticket_updated', t4, 'ticket_updated (reopen)');

    await expectNothingMore(both);
    expectNoErrors(c, s);
    const want = ['message', 'message', 'edit_message', 'delete_message', 'ticket_updated', 'ticket_updated', 'ticket_closed', 'ticket_updated'];
    same(seen, want, "the seed example's listeners were called with");
  },

  /**
   * One PATCH changing support_role and issue_level: every socket ends with the REST answer and
   * never gets the same ticket object twice (one event per change is fine if each shows its own).
   */
  async patch_two_fields() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Escalate me');
    const c = connect('customer', { query: { token: customer.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    await connected(c, s);
    const both = [c, s];

    const t5 = await rest.patch(agent, ticket, { support_role: 'MANAGER', issue_level: 'CRITICAL' });
    for (const o of both) {
      const first = await expectNext(o, 'ticket_updated', undefined, 'ticket_updated (both fields)');
      await sleep(QUIET_MS);
      const more = ticketEvents(o).slice(o.cursor);
      if (more.length === 0) {
        same(first, asSeenBy(o, first, t5), `${o.name}: ticket_updated (both fields) payload vs the REST answer`);
      } else {
        const second = await expectNext(o, 'ticket_updated', t5, 'second ticket_updated (both fields)');
        log(`  NOTE ${o.name}: one PATCH of two fields gave two ticket_updated events`);
        check(
          json(first) !== json(second),
          `${o.name}: one PATCH of two fields delivered the same ticket_updated object twice: ${json(first)}`,
        );
        same(
          [first.support_role, first.issue_level],
          ['MANAGER', ticket.issue_level],
          `${o.name}: the first of two ticket_updated events must show only its own change (support_role)`,
        );
      }
    }
    await expectNothingMore(both);
    expectNoErrors(c, s);
  },

  /** A token in the handshake's `auth` is enough: no `authorize` event needed. */
  async auth_token_handshake() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Lost password');
    const c = connect('customer (auth.token)', { auth: { token: customer.token } });
    await connected(c);

    const m = await rest.post(agent, ticket, 'Try the reset link');
    await expectNext(c, 'message', m);
    const closed = await rest.close(agent, ticket);
    await expectNext(c, 'ticket_closed', closed);
    await expectNothingMore([c]);
    expectNoErrors(c);
  },

  /** The `authorize` ack says who the socket is, or why not. */
  async authorize_ack() {
    const customer = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(customer, 'Billing');
    const c = connect('customer (authorize event)');
    const s = connect('agent (authorize event)');
    const bad = connect('bad then good (authorize event)');
    await connected(c, s, bad);

    same(
      await authorizeAck(c, { token: customer.token }),
      { ok: true, user: { id: customer.id, username: 'alice', role: 'CUSTOMER' } },
      'customer authorize ack',
    );
    same(
      await authorizeAck(s, { token: agent.token }),
      { ok: true, user: { id: agent.id, username: 'bob', role: 'AGENT' } },
      'agent authorize ack',
    );

    const refusals = [
      ['wrong signature', { token: sign(customer.claims, 'not-the-secret') }],
      ['expired', { token: sign({ ...customer.claims, exp: nowSecs() - 60 }) }],
      ['not a JWT', { token: 'not-a-jwt' }],
      ['no token field', {}],
      ['token not a string', { token: 42 }],
    ];
    for (const [what, payload] of refusals) {
      const ack = await authorizeAck(bad, payload);
      keysExactly(ack, ['ok', 'error'], `ack for a token that is ${what}`);
      check(ack.ok === false, `ack for a token that is ${what}: ok is ${json(ack.ok)}`);
      check(typeof ack.error === 'string' && ack.error.trim() !== '', `ack for a token that is ${what}: error is not a text: ${short(ack)}`);
    }
    await waitFor(`${bad.name} to receive ${refusals.length} error events`, () => errorEvents(bad).length >= refusals.length);
    for (const e of errorEvents(bad)) keysExactly(e.data, ['message'], `${bad.name}: error event`);

    const m1 = await rest.post(agent, ticket, 'We are looking into it');
    await expectNext(c, 'message', m1);
    await expectNext(s, 'message', m1);
    await expectNothingMore([bad]);

    // A refused socket may still authorize properly afterwards.
    same(
      await authorizeAck(bad, { token: customer.token }),
      { ok: true, user: { id: customer.id, username: 'alice', role: 'CUSTOMER' } },
      'ack after earlier refusals',
    );
    const m2 = await rest.post(customer, ticket, 'Thanks');
    for (const o of [c, s, bad]) await expectNext(o, 'message', m2);
    await expectNothingMore([c, s, bad]);
    expectNoErrors(c, s);
  },

  /** A customer sees their own tickets only; staff (AGENT and ADMIN) see every ticket. */
  async no_leak() {
    const alice = user('alice', 'CUSTOMER');
    const carol = user('carol', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const admin = user('root', 'ADMIN');
    const ticket = await rest.createTicket(alice, "Alice's secret problem");
    const a = connect('alice', { query: { token: alice.token } });
    const c = connect('carol (another customer)', { query: { token: carol.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    const r = connect('admin', { auth: { token: admin.token } });
    await connected(a, c, s, r);

    const m1 = await rest.post(alice, ticket, 'My account number is 1234');
    for (const o of [a, s, r]) await expectNext(o, 'message', m1);
    const m2 = await rest.post(agent, ticket, 'Got it');
    for (const o of [a, s, r]) await expectNext(o, 'message', m2);
    const e2 = await rest.edit(agent, ticket, m2, 'Got it, thanks');
    for (const o of [a, s, r]) await expectNext(o, 'edit_message', e2);
    await rest.remove(alice, ticket, m1);
    for (const o of [a, s, r]) await expectNext(o, 'delete_message', m1);
    const t1 = await rest.patch(admin, ticket, { issue_level: 'CRITICAL' });
    for (const o of [a, s, r]) await expectNext(o, 'ticket_updated', t1);
    const t2 = await rest.close(alice, ticket);
    for (const o of [a, s, r]) await expectNext(o, 'ticket_closed', t2);
    const t3 = await rest.reopen(admin, ticket);
    for (const o of [a, s, r]) await expectNext(o, 'ticket_updated', t3);
    const note = await rest.post(agent, ticket, 'internal: customer seems upset', { internal: true });
    for (const o of [s, r]) await expectNext(o, 'message', note, 'message (internal note)');
    await expectNothingMore([a, c, s, r]);
    check(ticketEvents(c).length === 0, "carol received events of alice's ticket");

    // Control: carol does get her own ticket's events, and alice none of them.
    const other = await rest.createTicket(carol, "Carol's problem");
    const m3 = await rest.post(agent, other, 'Hello Carol');
    for (const o of [c, s, r]) await expectNext(o, 'message', m3);
    await expectNothingMore([a, c, s, r]);
    expectNoErrors(a, c, s, r);
  },

  /** A new ticket is announced to its owner's sockets and to staff, never to another customer. */
  async ticket_opened() {
    const alice = user('alice', 'CUSTOMER');
    const carol = user('carol', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const a = connect('alice', { query: { token: alice.token } });
    const c = connect('carol (another customer)', { query: { token: carol.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    await connected(a, c, s);
    await sleep(200);
    const ticket = await rest.createTicket(alice, 'Printer on fire');
    for (const o of [a, s]) {
      const e = await waitFor(`${o.name} to receive ticket_opened`, () => o.events.find((x) => x.event === 'ticket_opened'));
      same(e.data, asSeenBy(o, e.data, ticket), `${o.name}: ticket_opened payload vs the REST answer`);
    }
    await sleep(QUIET_MS);
    check(!c.events.some((x) => x.event === 'ticket_opened'), "carol was told about alice's new ticket");
    expectNoErrors(a, c, s);
  },

  /** Every socket of one user receives each event once. */
  async two_sockets() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(alice, 'Two tabs open');
    const one = connect('alice tab 1 (query.token)', { query: { token: alice.token } });
    const two = connect('alice tab 2 (auth.token)', { auth: { token: alice.token } });
    const three = connect('alice phone (authorize event)');
    const s1 = connect('agent tab 1', { auth: { token: agent.token } });
    const s2 = connect('agent tab 2', { query: { token: agent.token } });
    await connected(one, two, three, s1, s2);
    const ack = await authorizeAck(three, { token: alice.token });
    check(ack?.ok === true, `alice phone: authorize refused: ${short(ack)}`);
    const all = [one, two, three, s1, s2];

    const m1 = await rest.post(agent, ticket, 'Hi Alice');
    for (const o of all) await expectNext(o, 'message', m1);
    const m2 = await rest.post(alice, ticket, 'Hi!');
    for (const o of all) await expectNext(o, 'message', m2);
    const e1 = await rest.edit(agent, ticket, m1, 'Hi Alice, how can we help?');
    for (const o of all) await expectNext(o, 'edit_message', e1);
    const closed = await rest.close(alice, ticket);
    for (const o of all) await expectNext(o, 'ticket_closed', closed);
    await expectNothingMore(all);
    expectNoErrors(...all);
  },

  /** Internal notes (and their edits and deletions) reach staff sockets only. */
  async internal_note() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const admin = user('root', 'ADMIN');
    const ticket = await rest.createTicket(alice, 'Refund please');
    const a = connect('alice', { query: { token: alice.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    const r = connect('admin', { auth: { token: admin.token } });
    await connected(a, s, r);

    const note = await rest.post(agent, ticket, 'Check with finance first', { internal: true });
    keysExactly(note, [...MESSAGE_KEYS, 'internal'], 'REST internal note');
    check(note.internal === true, `REST internal note: internal is ${json(note.internal)}`);
    for (const o of [s, r]) keysExactly(await expectNext(o, 'message', note, 'message (internal note)'), [...MESSAGE_KEYS, 'internal'], `${o.name}: internal note`);
    const edited = await rest.edit(agent, ticket, note, 'Finance says yes');
    for (const o of [s, r]) await expectNext(o, 'edit_message', edited, 'edit_message (internal note)');
    await rest.remove(admin, ticket, edited);
    for (const o of [s, r]) await expectNext(o, 'delete_message', edited, 'delete_message (internal note)');

    // Control: the public reply is the first and only thing alice sees.
    const reply = await rest.post(agent, ticket, 'Your refund is on its way');
    for (const o of [a, s, r]) keysExactly(await expectNext(o, 'message', reply, 'message (public reply)'), MESSAGE_KEYS, `${o.name}: public reply`);
    await expectNothingMore([a, s, r]);
    expectNoErrors(a, s, r);
  },

  /** A bad or missing token gets an `error` event and never a ticket event. */
  async bad_token() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(alice, 'Suspicious activity');
    const forgedAdmin = { ...alice.claims, id: `mallory-${RUN}`, role: 'ADMIN' };
    const badSockets = [
      connect('forged (wrong secret) in query.token', { query: { token: sign(alice.claims, 'guessed-secret') } }),
      connect('forged ADMIN in auth.token', { auth: { token: sign(forgedAdmin, 'guessed-secret') } }),
      connect('expired in query.token', { query: { token: sign({ ...alice.claims, exp: nowSecs() - 60 }) } }),
      connect('garbage in auth.token', { auth: { token: 'garbage' } }),
      connect('alg none in query.token', { query: { token: sign(forgedAdmin, '', { alg: 'none', typ: 'JWT' }).replace(/[^.]*$/, '') } }),
      connect('bad claims (no role) in auth.token', { auth: { token: sign({ ...alice.claims, role: undefined }) } }),
      connect('authorize with forged token'),
      connect('authorize without token'),
    ];
    const s = connect('agent (control)', { auth: { token: agent.token } });
    await connected(s, ...badSockets);
    badSockets[6].socket.emit('authorize', { token: sign(alice.claims, 'guessed-secret') });
    badSockets[7].socket.emit('authorize', {});
    for (const o of badSockets) await expectErrorEvent(o);

    const m = await rest.post(agent, ticket, 'Did you log in from abroad?');
    await expectNext(s, 'message', m);
    const closed = await rest.close(alice, ticket);
    await expectNext(s, 'ticket_closed', closed);
    await expectNothingMore([s, ...badSockets]);
    for (const o of badSockets) check(ticketEvents(o).length === 0, `${o.name} received ticket events`);
    expectNoErrors(s);
  },

  /** Run with SOCKET_AUTH_TIMEOUT_SECS=1: an anonymous socket is dropped by the server. */
  async idle_disconnect() {
    const alice = user('alice', 'CUSTOMER');
    const idle = connect('idle (no token)');
    const refused = connect('refused (bad token)', { auth: { token: 'garbage' } });
    const good = connect('authorized (auth.token)', { auth: { token: alice.token } });
    const late = connect('authorizes after 300 ms');
    await connected(idle, refused, good, late);
    await sleep(300);
    const ack = await authorizeAck(late, { token: alice.token });
    check(ack?.ok === true, `late authorize refused: ${short(ack)}`);

    for (const o of [idle, refused]) {
      const d = await waitFor(`${o.name} to be disconnected by the server`, () => o.disconnects[0], 5000);
      const after = d.at - o.connectedAt;
      log(`  ${o.name}: dropped after ${after} ms (${errorEvents(o).length} error event(s) before)`);
      check(d.reason === 'io server disconnect', `${o.name}: disconnect reason ${json(d.reason)}, expected "io server disconnect"`);
      check(after >= 700, `${o.name}: dropped after ${after} ms, before the 1 s timeout`);
    }
    await sleep(2500 - (Date.now() - good.connectedAt));
    for (const o of [good, late]) {
      check(o.disconnects.length === 0 && o.socket.connected, `${o.name} was disconnected: ${json(o.disconnects)}`);
    }
    // The client does not reconnect after a server-side disconnect.
    await sleep(300);
    for (const o of [idle, refused]) check(o.connects === 1, `${o.name} reconnected ${o.connects - 1} time(s)`);
    expectNoErrors(good, late);
  },

  /**
   * A socket has a deadline pending while it is anonymous (the timeout) or holds a token with
   * `exp`; a token without `exp` has none. A socket that goes away has its deadline forgotten at
   * once, not when it would have been due (10 s from now for the anonymous one, an hour for the
   * token): `/readyz` counts them.
   */
  async deadlines_follow_sockets() {
    const alice = user('alice', 'CUSTOMER');
    const expiring = user('erin', 'CUSTOMER', { exp: nowSecs() + 3600 });
    const until = async (what, want) => {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const got = (await expectStatus(200, 'GET', '/readyz', alice.token)).socket_deadlines;
        if (got === want) return;
        if (Date.now() > deadline) fail(`timed out waiting for ${what}: ${json(got)} pending, expected ${want}`);
        await sleep(15);
      }
    };
    await until('no deadline before any socket', 0);
    const anonymous = connect('anonymous');
    const expires = connect('token with exp (auth.token)', { auth: { token: expiring.token } });
    const late = connect('authorizes after connecting, token without exp');
    await connected(anonymous, expires, late);
    await until('a deadline for each socket', 3);
    const ack = await authorizeAck(late, { token: alice.token });
    check(ack?.ok === true, `late authorize refused: ${short(ack)}`);
    await until('the late socket to drop its anonymous timeout', 2);
    for (const o of [anonymous, expires, late]) o.socket.disconnect();
    await until("every closed socket's deadline to be forgotten", 0);
  },

  /** After a reconnection the client, re-sending its handshake query token, still gets events. */
  async reconnect() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(alice, 'Flaky wifi');
    const token = alice.token;
    const socket = io(BASE_URL, { query: { token }, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    socket.emit('authorize', { token });
    const a = observe('alice (seed style)', socket);
    const s = connect('agent (control)', { auth: { token: agent.token } });
    await connected(a, s);
    await sleep(200);

    const m1 = await rest.post(agent, ticket, 'Before the drop');
    for (const o of [a, s]) await expectNext(o, 'message', m1);

    log('  -- closing the transport under the client (socket.io.engine.close())');
    socket.io.engine.close();
    await waitFor('alice to see the transport close', () => a.disconnects.length === 1);
    check(
      ['forced close', 'transport close'].includes(a.disconnects[0].reason),
      `disconnect reason ${json(a.disconnects[0].reason)}, expected "forced close" (the client closed its transport)`,
    );
    await waitFor('alice to reconnect by herself', () => a.connects === 2, 8000);
    const m2 = await rest.post(agent, ticket, 'After the drop');
    for (const o of [a, s]) await expectNext(o, 'message', m2);

    log('  -- socket.disconnect(); socket.connect()');
    socket.disconnect();
    socket.connect();
    await waitFor('alice to connect again', () => a.connects === 3);
    const m3 = await rest.post(alice, ticket, 'Back again');
    for (const o of [a, s]) await expectNext(o, 'message', m3);
    const closed = await rest.close(agent, ticket);
    for (const o of [a, s]) await expectNext(o, 'ticket_closed', closed);

    await expectNothingMore([a, s]);
    expectNoErrors(a, s);
  },

  /** A token's `exp` ends the authorization it gave: an `error`, then no more events. */
  async token_expiry() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const ticket = await rest.createTicket(alice, 'Session timeout');
    const exp = nowSecs() + 2;
    const shortLived = sign({ ...alice.claims, exp });
    const a = connect('alice (token expiring in ~2 s)', { query: { token: shortLived } });
    const s = connect('agent (control)', { auth: { token: agent.token } });
    await connected(a, s);

    const m1 = await rest.post(agent, ticket, 'Before expiry');
    for (const o of [a, s]) await expectNext(o, 'message', m1);
    check(Date.now() < exp * 1000, 'the first event arrived only after the token expired; cannot test');

    const e = await expectErrorEvent(a, 6000);
    const lateBy = e.at - exp * 1000;
    log(`  error event ${lateBy >= 0 ? `${lateBy} ms after` : `${-lateBy} ms before`} exp`);
    check(lateBy > -1000, `the authorization ended ${-lateBy} ms before the token's exp`);
    check(lateBy < 3000, `the authorization ended ${lateBy} ms after the token's exp`);

    const m2 = await rest.post(agent, ticket, 'After expiry');
    await expectNext(s, 'message', m2);
    const closed = await rest.close(agent, ticket);
    await expectNext(s, 'ticket_closed', closed);
    await expectNothingMore([a, s]);

    // A fresh token brings it back.
    same(
      await authorizeAck(a, { token: alice.token }),
      { ok: true, user: { id: alice.id, username: 'alice', role: 'CUSTOMER' } },
      'authorize ack with a fresh token',
    );
    const reopened = await rest.reopen(agent, ticket);
    for (const o of [a, s]) await expectNext(o, 'ticket_updated', reopened);
    await expectNothingMore([a, s]);
    expectNoErrors(s);
  },

  /** Events arrive in stream order, none twice, including for a socket in two audiences. */
  async stream_order() {
    const alice = user('alice', 'CUSTOMER');
    const agent = user('bob', 'AGENT');
    const admin = user('root', 'ADMIN');
    const ticket = await rest.createTicket(alice, 'Many messages');
    const own = await rest.createTicket(admin, "The admin's own ticket");
    const a = connect('alice', { query: { token: alice.token } });
    const s = connect('agent', { auth: { token: agent.token } });
    const r = connect('admin (owner of one ticket and staff)', { auth: { token: admin.token } });
    await connected(a, s, r);

    const idsOf = (o, t) => ticketEvents(o).filter((e) => e.event === 'message' && e.data?.ticket_id === t.id).map((e) => e.data.id);
    const expectIds = async (o, t, want, what) => {
      await waitFor(`${o.name} to receive ${want.length} messages (${what})`, () => idsOf(o, t).length >= want.length);
      await sleep(QUIET_MS);
      const got = idsOf(o, t);
      const dupes = got.filter((id, i) => got.indexOf(id) !== i);
      check(dupes.length === 0, `${o.name} received ${dupes.length} message(s) twice (${what}): ${json(dupes)}`);
      same(got, want, `${o.name}: message ids in arrival order (${what})`);
    };

    log('  -- 20 messages posted one after another, alternating authors');
    const sequential = [];
    for (let i = 1; i <= 20; i += 1) {
      const m = await rest.post(i % 2 ? agent : alice, ticket, `message ${i}`);
      sequential.push(m.id);
    }
    for (const o of [a, s, r]) await expectIds(o, ticket, sequential, 'sequential');

    log('  -- 10 messages posted at once; the order is the stream order the messages list reports');
    await Promise.all(Array.from({ length: 10 }, (_, i) => rest.post(i % 2 ? agent : alice, ticket, `burst ${i}`)));
    const listed = (await rest.messages(agent, ticket)).map((m) => m.id);
    same(listed.slice(0, 20), sequential, 'GET messages (the first 20)');
    check(listed.length === 30, `GET messages lists ${listed.length} messages, expected 30`);
    for (const o of [a, s, r]) await expectIds(o, ticket, listed, 'sequential then burst');

    log("  -- the admin owns a ticket and is staff: each event must still arrive once");
    const ownIds = [];
    for (let i = 1; i <= 5; i += 1) ownIds.push((await rest.post(i % 2 ? agent : admin, own, `own ${i}`)).id);
    const closed = await rest.close(admin, own);
    for (const o of [s, r]) await expectIds(o, own, ownIds, "the admin's ticket");
    for (const o of [s, r]) {
      const closings = ticketEvents(o).filter((e) => e.event === 'ticket_closed');
      check(closings.length === 1, `${o.name} received ticket_closed ${closings.length} times`);
      same(closings[0].data, closed, `${o.name}: ticket_closed payload vs the REST answer`);
    }
    check(idsOf(a, own).length === 0, "alice received messages of the admin's ticket");
    check(ticketEvents(a).length === 30, `alice received ${ticketEvents(a).length} events, expected 30`);
    expectNoErrors(a, s, r);
  },
};

// ---------------------------------------------------------------------------------------------
// Several instances (tests/api_mongo.rs): BASE_URL is instance A, BASE_URL_B instance B, both
// on one MongoDB database.

/**
 * Sockets on instance B receive what is posted through instance A's REST API (and A's own
 * sockets too), each event once, in stream order: every instance broadcasts from the shared
 * stream, not from its own requests.
 */
scenarios.two_instances = async () => {
  const BASE_URL_B = (process.env.BASE_URL_B || '').replace(/\/+$/, '');
  check(BASE_URL_B !== '', 'BASE_URL_B must be set for two_instances');
  const customer = user('carol', 'CUSTOMER');
  const agent = user('dave', 'AGENT');
  const onB = (name, token) =>
    observe(name, io(BASE_URL_B, { forceNew: true, reconnectionDelay: 100, timeout: WAIT_MS, auth: { token } }));
  const cB = onB('customer on B', customer.token);
  const sB = onB('agent on B', agent.token);
  const sA = connect('agent on A', { auth: { token: agent.token } });
  await connected(cB, sB, sA);

  const ticket = await rest.createTicket(customer, 'Posted on A, seen on B');
  const posted = [];
  for (let i = 1; i <= 5; i += 1) posted.push(await rest.post(i % 2 ? agent : customer, ticket, `via A ${i}`));
  for (const o of [cB, sB, sA]) {
    for (const m of posted) await expectNext(o, 'message', m, `message ${m.content}`);
  }
  const closed = await rest.close(agent, ticket);
  for (const o of [cB, sB, sA]) await expectNext(o, 'ticket_closed', closed);
  await expectNothingMore([cB, sB, sA]);
  expectNoErrors(cB, sB, sA);
};

/**
 * A refused re-authorization ends the earlier one: the socket gets the refusal and no more of
 * the first user's events, until a good token authorizes it again.
 */
scenarios.reauthorize_refused = async () => {
  const alice = user('alice', 'CUSTOMER');
  const agent = user('bob', 'AGENT');
  const ticket = await rest.createTicket(alice, 'Who am I');
  const o = connect('alice, then a bad token', { auth: { token: alice.token } });
  await connected(o);
  const m1 = await rest.post(agent, ticket, 'seen while authorized');
  await expectNext(o, 'message', m1);

  const ack = await authorizeAck(o, { token: sign(alice.claims, 'not-the-secret') });
  check(ack?.ok === false, `a forged re-authorization was acknowledged: ${short(ack)}`);
  await expectErrorEvent(o);
  await rest.post(agent, ticket, 'must not reach the socket');
  await expectNothingMore([o]);

  const again = await authorizeAck(o, { token: alice.token });
  check(again?.ok === true, `a good token after the refusal was refused: ${short(again)}`);
  const m3 = await rest.post(agent, ticket, 'seen again');
  await expectNext(o, 'message', m3);
  await expectNothingMore([o]);
};

/**
 * Events the server does not know, whatever their names (accents, emoji, escaped quotes), are
 * answered with an `error` event and leave the socket connected and receiving.
 */
scenarios.odd_event_names = async () => {
  const alice = user('alice', 'CUSTOMER');
  const ticket = await rest.createTicket(alice, 'Odd names');
  const o = connect('alice', { auth: { token: alice.token } });
  await connected(o);
  const names = ['café', '😀', 'a"b', 'back\\slash', 'tab\tname', 'no_such_event'];
  for (const name of names) o.socket.emit(name, { token: alice.token });
  await waitFor(`${o.name} to get ${names.length} error events`, () => errorEvents(o).length >= names.length);
  for (const e of errorEvents(o)) keysExactly(e.data, ['message'], `${o.name}: error event`);
  check(o.disconnects.length === 0, `${o.name} was disconnected: ${short(o.disconnects)}`);
  const m = await rest.post(alice, ticket, 'still connected');
  await expectNext(o, 'message', m);
  check(o.disconnects.length === 0, `${o.name} was disconnected: ${short(o.disconnects)}`);
};

/** Tokens the REST API refuses are refused on the socket too, in the handshake and later. */
scenarios.token_rules = async () => {
  const alice = user('alice', 'CUSTOMER');
  const agent = user('bob', 'AGENT');
  const ticket = await rest.createTicket(alice, 'Strict tokens');
  const refused = [
    ['exp is this second', sign({ ...alice.claims, exp: nowSecs() })],
    ['a space before it', ` ${alice.token}`],
    ['a newline after it', `${alice.token}\n`],
    ['over 8 KiB', sign({ ...alice.claims, pad: 'x'.repeat(9000) })],
    ['an email with markup', sign({ ...alice.claims, email: '<script>@x.io' })],
    ['an email with two dots', sign({ ...alice.claims, email: 'a..b@x.io' })],
    ['an email with a stray quote', sign({ ...alice.claims, email: 'a"b@x.io' })],
  ];
  const handshakes = refused.map(([what, token]) => connect(`handshake: ${what}`, { auth: { token } }));
  const later = connect('authorize event');
  const control = connect('agent (control)', { auth: { token: agent.token } });
  await connected(control, later, ...handshakes);
  for (const o of handshakes) await expectErrorEvent(o);
  for (const [what, token] of refused) {
    const ack = await authorizeAck(later, { token });
    check(ack?.ok === false, `authorize with a token with ${what} was acknowledged: ${short(ack)}`);
  }
  const m = await rest.post(agent, ticket, 'for the control only');
  await expectNext(control, 'message', m);
  await expectNothingMore([control, later, ...handshakes]);
  for (const o of [later, ...handshakes]) check(ticketEvents(o).length === 0, `${o.name} received ticket events`);
};

/**
 * Sends good and bad tokens through every door (REST header, handshake `query.token` and
 * `auth.token`, the `authorize` event; over long-polling and WebSocket) and checks they worked
 * as they should. The Rust side runs this at RUST_LOG=trace and searches the log for them.
 */
scenarios.tokens_everywhere = async () => {
  const alice = user('alice', 'CUSTOMER');
  const forged = sign(alice.claims, 'not-the-secret');
  const marker = 'not-a-jwt-LOGMARKER';
  const ticket = await rest.createTicket(alice, 'Tokens on every door');
  await expectStatus(401, 'GET', '/api/v1/tickets', forged);
  await expectStatus(401, 'GET', '/api/v1/tickets', marker);
  for (const transports of [['polling'], ['websocket']]) {
    const how = transports[0];
    const byQuery = connect(`${how}: query.token`, { transports, query: { token: alice.token } });
    const byAuth = connect(`${how}: auth.token`, { transports, auth: { token: alice.token } });
    const refused = connect(`${how}: forged auth.token`, { transports, auth: { token: forged } });
    const byEvent = connect(`${how}: authorize event`, { transports });
    await connected(byQuery, byAuth, refused, byEvent);
    await expectErrorEvent(refused);
    check((await authorizeAck(byEvent, { token: marker }))?.ok === false, `${how}: the marker was taken`);
    check((await authorizeAck(byEvent, { token: forged }))?.ok === false, `${how}: a forged token was taken`);
    check((await authorizeAck(byEvent, { token: alice.token }))?.ok === true, `${how}: a good token was refused`);
    const m = await rest.post(alice, ticket, `over ${how}`);
    for (const o of [byQuery, byAuth, byEvent]) await expectNext(o, 'message', m);
    for (const o of [byQuery, byAuth, refused, byEvent]) o.socket.disconnect();
  }
};

// ---------------------------------------------------------------------------------------------
// Main

const name = process.argv[2];
if (!name || !Object.hasOwn(scenarios, name)) {
  console.error(`usage: BASE_URL=http://127.0.0.1:PORT JWT_SECRET=... node ${process.argv[1]} <scenario>`);
  console.error(`scenarios: ${Object.keys(scenarios).join(', ')}`);
  process.exit(1);
}
if (!BASE_URL || !JWT_SECRET) {
  console.error(`FAIL ${name}: BASE_URL and JWT_SECRET must be set`);
  process.exit(1);
}

const watchdog = setTimeout(() => {
  console.error(`FAIL ${name}: the scenario did not finish within ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS);

log(`scenario ${name} against ${BASE_URL}`);
let code = 0;
try {
  await scenarios[name]();
  log(`PASS ${name}`);
} catch (e) {
  console.error(`FAIL ${name}: ${e instanceof Failure ? e.message : e?.stack || e}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  for (const o of observers) o.socket.disconnect();
}
process.exit(code);
