// The web console's speed figures (scripts/bench-console runs this; never a test assertion):
//
//   BASE_URL=http://127.0.0.1:5000 node tests/browser/bench.mjs [--messages 10000] [--runs 5]
//
// 1. First load: what a browser transfers to show the console to a signed-in user (headers and
//    bodies as Chromium counts them), the socket.io client and API answers counted apart.
// 2. A ticket of N messages (posted here through the REST API; the server should run with
//    RATE_LIMITS=off) opened in headless Chromium: the time from the click on it in the inbox
//    until its latest message is on screen, over several runs.

import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MESSAGES = arg('--messages', 10000);
const RUNS = arg('--runs', 5);
const CONCURRENCY = 32;

async function call(method, path, token, body) {
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const mint = async (username, role) => (await call('POST', '/api/v1/dev/token', null, { username, role })).token;
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function seed(token) {
  const ticket = await call('POST', '/api/v1/tickets', token, { topic: `Ten thousand messages (${MESSAGES})`, description: 'Benchmark ticket.' });
  const started = Date.now();
  let next = 1;
  const worker = async () => {
    for (let n = next++; n <= MESSAGES; n = next++) {
      await call('POST', `/api/v1/tickets/${ticket.id}/messages`, token, { content: `Message number ${n} of the benchmark conversation, long enough to wrap a little on a phone.` });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  console.log(`seeded      ${MESSAGES} messages in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const small = await call('POST', '/api/v1/tickets', token, { topic: 'A short ticket', description: 'Two messages.' });
  await call('POST', `/api/v1/tickets/${small.id}/messages`, token, { content: 'hello' });
  return { big: ticket, small };
}

async function firstLoad(browser, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const responses = [];
  page.on('requestfinished', async (request) => {
    const sizes = await request.sizes().catch(() => null);
    if (sizes) responses.push({ url: request.url(), type: request.resourceType(), bytes: sizes.responseBodySize + sizes.responseHeadersSize });
  });
  const started = Date.now();
  await page.goto(`${BASE_URL}/#token=${token}`);
  await page.locator('#ticket-list button').first().waitFor();
  await page.locator('#live.ok').waitFor();
  const shown = Date.now() - started;
  await page.waitForTimeout(300);
  const isSocketClient = (r) => r.url.includes('/vendor/socket.io.min.js');
  const isApi = (r) => r.url.includes('/api/') || r.url.includes('/socket.io/');
  const console_ = responses.filter((r) => !isSocketClient(r) && !isApi(r));
  const sum = (list) => list.reduce((total, r) => total + r.bytes, 0);
  console.log(`first load  console ${kib(sum(console_))} in ${console_.length} files (target < 100 KiB), ` +
    `socket.io client ${kib(sum(responses.filter(isSocketClient)))}, API ${kib(sum(responses.filter((r) => isApi(r))))}; ` +
    `inbox on screen and live after ${shown} ms`);
  for (const r of console_) console.log(`            ${kib(r.bytes).padStart(10)}  ${new URL(r.url).pathname}`);
  await context.close();
}

async function openBig(browser, token, big, small) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${BASE_URL}/#token=${token}`);
  await page.locator('#live.ok').waitFor();
  const times = [];
  for (let run = 0; run < RUNS; run += 1) {
    await page.locator('#ticket-list button', { hasText: small.topic }).click();
    await page.locator('#messages .msg-body', { hasText: 'hello' }).waitFor();
    const ms = await page.evaluate(async (topic) => {
      const button = [...document.querySelectorAll('#ticket-list button')].find((b) => b.textContent.includes(topic));
      const started = performance.now();
      button.click();
      for (;;) {
        const last = document.querySelector('#messages li.msg:last-child .msg-body');
        if (last && last.textContent.startsWith('Message number')) {
          const el = document.getElementById('messages');
          if (el.scrollHeight - el.scrollTop - el.clientHeight < 2) break;
        }
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
      await new Promise((resolve) => requestAnimationFrame(resolve));
      return performance.now() - started;
    }, big.topic);
    times.push(ms);
  }
  const rendered = await page.locator('#messages li.msg').count();
  const t0 = Date.now();
  await page.locator('#messages').evaluate((el) => { el.scrollTop = 0; });
  await page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length > n, rendered);
  const older = Date.now() - t0;
  console.log(`open ticket ${MESSAGES} messages: latest message on screen in median ${median(times).toFixed(0)} ms ` +
    `(runs: ${times.map((t) => t.toFixed(0)).join(', ')} ms); ${rendered} messages rendered; ` +
    `scrolling to the top loads the next page in ${older} ms`);
  await page.locator('#messages').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  const h0 = Date.now();
  await page.getByRole('button', { name: 'History' }).click();
  await page.locator('.snapshot h3').waitFor({ timeout: 60000 });
  const events = await page.locator('#history-slider').getAttribute('max');
  console.log(`history     ${events} events: timeline and the latest snapshot on screen in ${Date.now() - h0} ms`);
  await context.close();
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
try {
  const customer = await mint('Bench Customer', 'CUSTOMER');
  const admin = await mint('Bench Admin', 'ADMIN');
  const { big, small } = await seed(customer);
  await firstLoad(browser, customer);
  await openBig(browser, admin, big, small);
} finally {
  await browser.close();
}
