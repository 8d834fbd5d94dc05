// Secrets stay secret across the long run (issue 19 part 7), for `scripts/torture --trace-secrets`:
// the torture's servers run at RUST_LOG=trace with every secret ticketd knows configured, against
// a loopback stub that plays Discord (REST and gateway, so the bot identifies and resumes with its
// token), both error webhooks and the partner webhook (some answers fail, so retries and alerts
// are logged too); a prober sends refused tokens on every door beside the load. At the end every
// line the servers (and `ticketd verify`) printed in every cycle is searched for each secret and
// each JWT used, and for its signature; any hit fails the run. tests/secrets.rs is the short
// version of the same search.

import { createHmac, randomBytes } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/socket/package.json'));
const { io } = require('socket.io-client');

const GUILD = '1100000000000000001';
const BOT = '1100000000000000002';
const hex = (n) => randomBytes(n).toString('hex');

/** Fresh secrets for one run: each one unique, so a hit can only come from the server's output. */
export function makeSecrets() {
  const key = randomBytes(32).toString('base64');
  return {
    metricsToken: `metrics-${hex(12)}`,
    wrongMetricsToken: `metrics-wrong-${hex(8)}`,
    botToken: `MTEwMDAwMDAwMDAwMDAwMDAy.${hex(4)}.${hex(16)}`,
    errorHookToken: `errhook-${hex(16)}`,
    bridgeHookToken: `bothook-${hex(16)}`,
    partnerPathToken: `partner-${hex(12)}`,
    partnerQueryToken: `q-${hex(12)}`,
    webhookKey: key,
    webhookSecret: `whsec_${key}`,
  };
}

/**
 * The loopback stub: Discord's REST API (the gateway, the bot's user, 500 for everything else, so
 * the bridge retries and reports), its gateway (HELLO, READY after IDENTIFY, and a dropped
 * connection now and then so the bot resumes), the two error webhooks and the partner webhook
 * (every fifth answer a 500, every seventh connection reset).
 */
export async function startStub(secrets) {
  const seen = { rest: 0, identify: 0, resume: 0, botAuth: 0, errorHook: 0, bridgeHook: 0, partner: 0 };
  let n = 0;
  const server = http.createServer((req, res) => {
    n += 1;
    const url = req.url || '';
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    req.resume();
    req.on('end', () => {
      if (url.startsWith('/api/webhooks/')) {
        if (url.includes(secrets.errorHookToken)) seen.errorHook += 1;
        if (url.includes(secrets.bridgeHookToken)) seen.bridgeHook += 1;
        if (n % 7 === 0) return req.socket.destroy();
        return n % 5 === 0 ? send(500, { message: 'stub failure' }) : send(204);
      }
      if (url.startsWith('/partner/')) {
        seen.partner += 1;
        if (n % 7 === 0) return req.socket.destroy();
        return n % 5 === 0 ? send(500, { message: 'stub failure' }) : send(200, {});
      }
      seen.rest += 1;
      if ((req.headers.authorization || '') === `Bot ${secrets.botToken}`) seen.botAuth += 1;
      const p = url.replace(/^\/api\/v\d+/, '').split('?')[0];
      const gateway = `ws://127.0.0.1:${server.address().port}/gateway`;
      if (p === '/gateway') return send(200, { url: gateway });
      if (p === '/gateway/bot') {
        return send(200, {
          url: gateway, shards: 1,
          session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 },
        });
      }
      if (p === '/users/@me') return send(200, currentUser());
      return send(500, { message: 'stub: Discord is down', code: 0 });
    });
  });
  let wss = null;
  try {
    const { WebSocketServer } = require('ws');
    wss = new WebSocketServer({ noServer: true });
  } catch {
    // Without the ws package the gateway refuses: the bot still retries with its token.
  }
  server.on('upgrade', (req, socket, head) => {
    if (!wss) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => gatewaySession(ws, server, seen));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    seen,
    env: {
      DISCORD_BOT_TOKEN: secrets.botToken,
      GUILD_ID: GUILD,
      DISCORD_API_URL: base,
      ERROR_WEBHOOK_URL: `${base}/api/webhooks/4101/${secrets.errorHookToken}`,
      ERROR_BOT_WEBHOOK_URL: `${base}/api/webhooks/4102/${secrets.bridgeHookToken}`,
      WEBHOOK_URL: `${base}/partner/${secrets.partnerPathToken}?key=${secrets.partnerQueryToken}`,
      WEBHOOK_SECRET: secrets.webhookSecret,
      WEBHOOK_RETRY_SCHEDULE: '1,2',
      METRICS_TOKEN: secrets.metricsToken,
    },
    close: () => {
      for (const c of wss ? wss.clients : []) c.terminate();
      server.closeAllConnections?.();
      server.close();
    },
  };
}

function currentUser() {
  return {
    id: BOT, username: 'ticketbot', discriminator: '0', global_name: null, avatar: null, bot: true,
    public_flags: 0, verified: true, mfa_enabled: false, flags: 0,
  };
}

function gatewaySession(ws, server, seen) {
  let s = 0;
  const gateway = `ws://127.0.0.1:${server.address().port}/gateway`;
  ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41250 } }));
  ws.on('message', (data) => {
    let m;
    try {
      m = JSON.parse(String(data));
    } catch {
      return;
    }
    if (m.op === 1) ws.send(JSON.stringify({ op: 11 }));
    if (m.op === 2) {
      seen.identify += 1;
      s += 1;
      ws.send(JSON.stringify({
        op: 0, t: 'READY', s,
        d: {
          v: 10, user: currentUser(), guilds: [{ id: GUILD, unavailable: true }], session_id: `stub-${hex(4)}`,
          resume_gateway_url: gateway, shard: [0, 1], application: { id: BOT, flags: 0 },
        },
      }));
      // Dropped a little later, so the bot resumes (op 6 carries the token too).
      setTimeout(() => ws.close(4000, 'stub drops the session'), 3000 + Math.random() * 4000).unref();
    }
    if (m.op === 6) {
      seen.resume += 1;
      // Resuming is refused half the time (INVALID_SESSION: identify again).
      if (Math.random() < 0.5) ws.send(JSON.stringify({ op: 9, d: false }));
      else ws.send(JSON.stringify({ op: 0, t: 'RESUMED', s: ++s, d: {} }));
      setTimeout(() => ws.close(4000, 'stub drops the session'), 3000 + Math.random() * 4000).unref();
    }
  });
  ws.on('error', () => {});
}

/** A token signed with another key, an expired one, garbage and one with whitespace around it. */
export function badTokens(sign, signWith) {
  const claims = { id: 'eve', username: 'eve', email: 'eve@example.com', role: 'ADMIN' };
  return [
    signWith(claims, `another-key-${hex(16)}`),
    sign({ ...claims, role: 'CUSTOMER', exp: 1 }),
    `eyJhbGciOiJIUzI1NiJ9.${hex(10)}.${hex(16)}`,
  ];
}

/**
 * Beside the load, until `stopped()`: refused tokens on REST and on the socket (handshake, query,
 * `authorize`), a valid one sent with whitespace around it, and /metrics with the right and a
 * wrong token. Answers are not checked here (the torture checks the load); the point is that each
 * token crosses every door and gets logged wherever the server logs.
 */
export async function probe(urlOf, goodTokens, bad, secrets, stopped, count) {
  const wrongMetrics = secrets.wrongMetricsToken;
  let round = 0;
  while (!stopped()) {
    round += 1;
    const url = urlOf();
    const good = goodTokens[round % goodTokens.length];
    const calls = [
      ...bad.map((t) => ['GET', '/api/v1/tickets', `Bearer ${t}`]),
      ['GET', '/api/v1/tickets', `Bearer  ${good} `],
      ['GET', '/api/v1/tickets', `Token ${good}`],
      ['GET', '/metrics', `Bearer ${secrets.metricsToken}`],
      ['GET', '/metrics', `Bearer ${wrongMetrics}`],
    ];
    for (const [method, p, auth] of calls) {
      try {
        const r = await fetch(`${url}${p}`, { method, headers: { authorization: auth }, signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        count.requests += 1;
      } catch {
        count.failed += 1;
      }
    }
    if (round % 5 === 1) {
      for (const [auth, query, later] of [
        [{ token: bad[0] }, {}, null],
        [{}, { token: bad[1] }, null],
        [{}, {}, bad[2]],
        [{}, {}, good],
      ]) {
        const s = io(url, { transports: ['websocket'], auth, query, reconnection: false, timeout: 3000 });
        await new Promise((resolve) => {
          const done = () => { s.close(); resolve(); };
          s.on('connect', () => { if (later) s.emit('authorize', { token: later }); setTimeout(done, 200); });
          s.on('connect_error', done);
          setTimeout(done, 3000);
        });
        count.sockets += 1;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Every line of every log in `dir` (server-*.log, verify.log) searched for each secret; returns
 * the kinds with their values, hits and examples, and how much was read.
 */
export async function scan(dir, kinds) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.log')).map((f) => path.join(dir, f));
  const result = { files: files.map((f) => path.basename(f)), lines: 0, bytes: 0, kinds: [] };
  const all = kinds.map(({ kind, values }) => ({
    kind, values: [...new Set(values.filter((v) => v && v.length >= 8))], hits: 0, examples: [],
  }));
  for (const file of files) {
    result.bytes += statSync(file).size;
    const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) {
      result.lines += 1;
      for (const k of all) {
        for (const v of k.values) {
          if (line.includes(v)) {
            k.hits += 1;
            if (k.examples.length < 3) k.examples.push(`${path.basename(file)}: ${line.slice(0, 300)}`);
          }
        }
      }
    }
  }
  result.kinds = all.map((k) => ({ kind: k.kind, values: k.values.length, hits: k.hits, examples: k.examples }));
  result.leaks = all.reduce((n, k) => n + k.hits, 0);
  return result;
}

export function hmacSign(claims, key) {
  const b = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const input = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}
