// The web console in a real browser (Debian's Chromium driven by playwright-core), against a
// running ticketd in DEVELOPMENT mode:
//
//   BASE_URL=http://127.0.0.1:5000 [SCREENSHOT_DIR=docs/screenshots] node tests/browser/console.mjs
//
// A customer opens a ticket and chats; an admin in a second browser context replies, edits,
// deletes and writes an internal note; the customer sees each change live and never the note;
// closing shows on both sides; the history view shows the text before an edit; the reports page
// draws its charts; a script tag
// typed as a message shows as text; a long conversation opens at its latest page and pages back
// on scroll. Prints `PASS console` and exits 0, or `FAIL console: <why>` and exits 1.
// tests/console.rs runs it against its own in-process server.

import { chromium } from 'playwright-core';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';

const BASE_URL = (process.env.BASE_URL || '').replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const WAIT_MS = 10000;
const WATCHDOG_MS = 150000;


class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}
const log = (...args) => console.log(...args);

async function mintToken(username, role, id) {
  const response = await fetch(`${BASE_URL}/api/v1/dev/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, role, ...(id ? { id } : {}) }),
  });
  check(response.ok, `minting a ${role} token answered ${response.status}`);
  return (await response.json()).token;
}

async function rest(method, path, token, body) {
  const response = await fetch(`${BASE_URL}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  check(response.ok, `${method} ${path} answered ${response.status}: ${await response.clone().text()}`);
  return response.status === 204 ? null : response.json();
}

async function shot(page, name) {
  if (!SCREENSHOT_DIR) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`) });
  log(`screenshot ${name}.png`);
}

/** Fails the run on any page error, console error or dialog (an alert would mean script ran). */
function watch(page, who) {
  page.on('pageerror', (error) => problems.push(`${who}: page error: ${error.message}`));
  page.on('console', (message) => {
    // Chromium logs every failed request; the 429 this scenario provokes is expected.
    const expected = /Failed to load resource: the server responded with a status of 429/;
    if (message.type() === 'error' && !expected.test(message.text())) problems.push(`${who}: console error: ${message.text()}`);
  });
  page.on('dialog', async (dialog) => {
    problems.push(`${who}: a dialog opened (${dialog.type()}: ${dialog.message()})`);
    await dialog.dismiss();
  });
}
const problems = [];

const messageWith = (page, text) => page.locator('#messages li.msg').filter({ has: page.locator('.msg-body', { hasText: text }) });

async function run() {
  check(BASE_URL, 'BASE_URL is not set');
  check(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (scripts/test does it)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  try {
    await scenario(browser);
  } finally {
    await browser.close();
  }
}

async function scenario(browser) {
  const customerContext = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  // Layout shifts not caused by input (the Layout Instability API), for the "no shift" check.
  await customerContext.addInitScript(() => {
    window.layoutShifts = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.layoutShifts.push(entry.value);
    }).observe({ type: 'layout-shift', buffered: true });
  });
  const staffContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const customer = await customerContext.newPage();
  const staff = await staffContext.newPage();
  watch(customer, 'customer');
  watch(staff, 'staff');
  customer.setDefaultTimeout(WAIT_MS);
  staff.setDefaultTimeout(WAIT_MS);

  // --- The customer signs in with the development "try it" form.
  const page = await customer.goto(`${BASE_URL}/`);
  const csp = page.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `restrictive CSP expected, got: ${csp}`);
  await customer.getByRole('heading', { name: 'Try it' }).waitFor();
  await shot(customer, 'sign-in');
  await customer.getByLabel('Name', { exact: true }).fill('Ann');
  await customer.getByLabel('Role').selectOption('CUSTOMER');
  // Keyboard: Tab reaches the button, which shows a visible focus ring, and Enter presses it.
  await customer.getByLabel('Role').focus();
  await customer.keyboard.press('Tab');
  await customer.keyboard.press('Tab');
  const ring = await customer.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { text: el.textContent, outline: `${style.outlineStyle} ${style.outlineWidth}` };
  });
  check(ring.text === 'Get a token and sign in' && ring.outline === 'solid 3px', `keyboard focus: ${JSON.stringify(ring)}`);
  await customer.keyboard.press('Enter');
  await customer.getByRole('heading', { name: 'My tickets' }).waitFor();
  await customer.locator('#live.ok').waitFor();
  log('customer signed in');

  // --- The customer opens a ticket and writes.
  const topic = 'Cannot log in';
  if (!(await customer.locator('#new-ticket').evaluate((d) => d.open))) await customer.getByText('Open a new ticket').click();
  await customer.getByLabel('Topic').fill(topic);
  await customer.getByLabel('Describe the problem').fill('The login page says my password is wrong.');
  await customer.getByRole('button', { name: 'Open ticket' }).click();
  await customer.locator('#ticket-title', { hasText: topic }).waitFor();
  const composer = customer.getByRole('textbox', { name: /^Message/ });
  await composer.fill('Hello, I reset my password twice already.');
  await composer.press('Enter');
  await messageWith(customer, 'I reset my password twice').waitFor();
  log('customer opened a ticket and wrote');

  // --- An admin signs in through a token in the URL fragment, in a second context.
  const staffToken = await mintToken('Bob', 'ADMIN', 'bob-admin');
  await staff.goto(`${BASE_URL}/#token=${staffToken}`);
  await staff.getByRole('heading', { name: 'Inbox' }).waitFor();
  check(!staff.url().includes('token'), `the token must leave the address bar, url is ${staff.url()}`);
  const stored = await staff.evaluate(() => sessionStorage.getItem('ticketd.token'));
  check(stored === staffToken, 'the fragment token is kept in sessionStorage');
  await staff.locator('#live.ok').waitFor();
  await staff.locator('#ticket-list button', { hasText: topic }).click();
  await messageWith(staff, 'I reset my password twice').waitFor();
  log('admin opened the ticket from the inbox');

  // --- Staff claims the ticket; the customer sees who has it, live.
  await staff.getByRole('button', { name: 'Claim', exact: true }).click();
  await staff.locator('#ticket-meta .holder', { hasText: 'held by you' }).waitFor();
  await customer.locator('#ticket-meta .holder', { hasText: 'with Bob' }).waitFor();
  check(await staff.getByRole('button', { name: 'Release', exact: true }).isVisible(), 'the holder can release the ticket');
  log('staff claimed the ticket; the customer saw it live');

  // --- Staff tags it with chips; the customer never sees tags.
  await staff.getByLabel(/^Add a tag/).fill('VIP');
  await staff.getByRole('button', { name: 'Add tag' }).click();
  await staff.locator('#tag-chips .chip', { hasText: 'vip' }).waitFor();
  await staff.getByLabel(/^Add a tag/).fill('billing');
  await staff.getByLabel(/^Add a tag/).press('Enter');
  await staff.locator('#tag-chips .chip', { hasText: 'billing' }).waitFor();
  await staff.getByRole('button', { name: 'Remove tag billing' }).click();
  await staff.locator('#tag-chips .chip', { hasText: 'billing' }).waitFor({ state: 'detached' });
  check(await customer.locator('#tag-editor').isHidden(), 'customers have no tag editor');
  check((await customer.locator('.chip').count()) === 0, 'customers see no tags');
  log('staff tagged the ticket with chips');

  // --- The inbox filters: mine, unassigned, by tag.
  const other = await rest('POST', '/tickets', await mintToken('Cy', 'CUSTOMER', 'cy-customer'), { topic: 'Unclaimed question', description: 'Nobody has this yet.' });
  const inboxHas = (text) => staff.locator('#ticket-list button', { hasText: text });
  await staff.getByLabel('Held by').selectOption('me');
  await staff.getByRole('button', { name: 'Apply filters' }).click();
  await inboxHas(topic).waitFor();
  // The unclaimed ticket may already be listed (it arrived live) until the filtered list comes
  // back: wait for it to go, which times out (and fails) if "mine" does not hide it.
  await inboxHas('Unclaimed question').waitFor({ state: 'detached', timeout: 10_000 });
  check((await inboxHas('Unclaimed question').count()) === 0, '"mine" hides the unclaimed ticket');
  await staff.getByLabel('Held by').selectOption('none');
  await staff.getByRole('button', { name: 'Apply filters' }).click();
  await inboxHas('Unclaimed question').waitFor();
  await staff.getByLabel('Held by').selectOption('');
  await staff.getByLabel('Tag', { exact: true }).fill('VIP');
  await staff.getByRole('button', { name: 'Apply filters' }).click();
  await inboxHas('Unclaimed question').waitFor({ state: 'detached' });
  check((await inboxHas(topic).locator('.chip', { hasText: 'vip' }).count()) === 1, 'the inbox shows the tag');
  await shot(staff, 'staff-claimed-and-tagged');
  await staff.getByLabel('Tag', { exact: true }).fill('');
  await staff.getByRole('button', { name: 'Apply filters' }).click();
  await inboxHas('Unclaimed question').waitFor();
  check(other.id, 'the second ticket opened');
  log('inbox filters: mine, unassigned, tag');

  // --- Search (issue 17 part 1): a word of a message, accents and a prefix, highlighted; the
  // excerpts of a ticket whose text holds HTML show it as text, with only the marks added.
  await rest('POST', '/tickets', await mintToken('Cy', 'CUSTOMER', 'cy-customer'), { topic: 'Café printer <img src=x onerror="window.pwned=1">', description: 'The <b>printer</b> is off.' });
  await staff.getByLabel('Search tickets').fill('reset PASSWÖ');
  await staff.getByRole('button', { name: 'Search', exact: true }).click();
  const hit = staff.locator('#search-list button', { hasText: topic });
  await hit.waitFor();
  check(await hit.locator('mark', { hasText: 'password' }).count() >= 1, 'the hit marks the matched word');
  check(await hit.locator('mark', { hasText: 'reset' }).count() >= 1, 'every word is marked');
  await staff.getByLabel('Search tickets').fill('cafe print');
  await staff.locator('#search-list button', { hasText: 'Café printer' }).waitFor();
  const unsafe = staff.locator('#search-list button', { hasText: 'Café printer' });
  check(await unsafe.locator('img, b').count() === 0, 'customer HTML in excerpts stays text');
  check(await unsafe.locator('.excerpt', { hasText: '<b>printer</b>' }).count() >= 1 && await unsafe.locator('.excerpt mark', { hasText: 'printer' }).count() >= 1, 'marks only, the rest as text');
  check(await staff.evaluate(() => window.pwned === undefined), 'nothing from a ticket ran');
  await shot(staff, 'staff-search');
  await staff.getByLabel('Search tickets').fill('password');
  await staff.getByRole('button', { name: 'Search', exact: true }).click();
  await staff.locator('#search-list button', { hasText: topic }).click();
  await messageWith(staff, 'I reset my password twice').waitFor();
  await staff.getByRole('button', { name: 'Clear search' }).click();
  check(await staff.locator('#search-results').isHidden(), 'clearing hides the results');
  log('staff searched: highlighted hits, customer HTML kept as text');

  // --- A saved reply: the picker fills the composer with its text, to be edited before sending.
  await rest('PUT', '/replies/looking', staffToken, { content: 'We are looking into it' });
  const staffComposer = staff.getByRole('textbox', { name: /^Message/ });
  const picker = staff.getByLabel('Saved reply');
  check(await picker.isVisible(), 'staff see the saved-reply picker');
  await picker.focus();
  await picker.locator('option[value="looking"]').waitFor({ state: 'attached' });
  await picker.selectOption('looking');
  check(await staffComposer.inputValue() === 'We are looking into it', `the picker filled the composer, it holds ${await staffComposer.inputValue()}`);
  check(await picker.inputValue() === '', 'the picker is ready for another reply');
  check(!(await customer.getByLabel('Saved reply').isVisible()), 'customers have no saved replies');
  log('staff filled the composer from a saved reply');

  // --- Staff replies (the saved text, edited); the customer sees it live, and nothing on the
  // page moves for it.
  await customer.evaluate(() => { window.layoutShifts.length = 0; });
  await staffComposer.press('End');
  await staffComposer.pressSequentially('.');
  await staff.getByRole('button', { name: 'Send' }).click();
  await messageWith(customer, 'We are looking into it.').waitFor();
  await customer.waitForTimeout(200);
  const shifts = await customer.evaluate(() => window.layoutShifts.reduce((sum, value) => sum + value, 0));
  check(shifts === 0, `a live message shifted the layout (CLS ${shifts})`);
  log('customer saw the reply live, without layout shift');

  // --- Staff writes an internal note: visibly different for staff, never shown to the customer.
  await staffComposer.fill('Looks like the SSO outage; do not tell yet.');
  await staff.getByLabel('Internal note (staff only)').check();
  await staff.getByRole('button', { name: 'Send' }).click();
  const note = messageWith(staff, 'Looks like the SSO outage');
  await note.waitFor();
  check(await note.evaluate((li) => li.classList.contains('internal')), 'the note is marked internal');
  check((await note.locator('.internal-tag').textContent()).includes('Internal note'), 'the note says it is internal');
  const noteStyle = await note.evaluate((li) => getComputedStyle(li).borderStyle);
  check(noteStyle.includes('dashed'), `the note looks different (border ${noteStyle})`);
  await shot(staff, 'staff');

  // --- A unread mark: the customer writes while staff looks at another view.
  // (Checked below on the customer side through the live message order instead.)

  // --- Staff edits its reply; the customer sees the new text live.
  const reply = messageWith(staff, 'We are looking into it.');
  await reply.getByRole('button', { name: 'Edit' }).click();
  const editBox = staff.getByLabel('Edit message');
  await editBox.fill('We are looking into it right now.');
  await staff.getByRole('button', { name: 'Save message' }).click();
  await messageWith(customer, 'We are looking into it right now.').waitFor();
  check(await messageWith(customer, 'right now').locator('.edited').isVisible(), 'the customer sees the edit mark');
  log('customer saw the edit live');

  // --- Staff writes and deletes a message; the customer sees it go.
  await staffComposer.fill('Wrong ticket, sorry.');
  await staff.getByRole('button', { name: 'Send' }).click();
  await messageWith(customer, 'Wrong ticket, sorry.').waitFor();
  const wrong = messageWith(staff, 'Wrong ticket, sorry.');
  await wrong.getByRole('button', { name: 'Delete' }).click();
  await wrong.getByRole('button', { name: 'Confirm delete' }).click();
  await customer.locator('#messages li.deleted').waitFor();
  check((await messageWith(customer, 'Wrong ticket').count()) === 0, 'the deleted text is gone for the customer');
  log('customer saw the deletion live');

  // --- A script tag typed as a message shows as text, on both sides.
  const script = '<script>alert(1)</script>';
  await composer.fill(script);
  await composer.press('Enter');
  for (const [who, p] of [['customer', customer], ['staff', staff]]) {
    const body = p.locator('#messages .msg-body', { hasText: '<script>' });
    await body.waitFor();
    check((await body.textContent()) === script, `${who}: the script tag is shown as text`);
    check((await p.locator('#messages script').count()) === 0, `${who}: no script element in the conversation`);
  }
  log('the script tag is text on both sides');

  // --- Attachments are links; a rate limit says how long to wait, from Retry-After.
  await composer.fill('Here is a screenshot.');
  await customer.getByLabel(/^Attachment links/).fill('https://example.com/shot.png');
  await composer.press('Enter');
  const link = staff.locator('#messages .attachments a', { hasText: 'https://example.com/shot.png' });
  await link.waitFor();
  check((await link.getAttribute('href')) === 'https://example.com/shot.png', 'the attachment is a link');
  const limited = async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    return route.fulfill({
      status: 429,
      headers: { 'Retry-After': '7', 'Content-Type': 'application/json' },
      body: JSON.stringify({ error: 'RATELIMIT', message: 'You are being ratelimited only 15 request are allowed per minute' }),
    });
  };
  await customer.route((url) => url.pathname.endsWith('/messages'), limited);
  await composer.fill('One more thing');
  await composer.press('Enter');
  await customer.locator('#alert', { hasText: 'Please wait 7 seconds and try again.' }).waitFor();
  check((await composer.inputValue()) === 'One more thing', 'a refused message stays in the composer');
  await customer.unroute((url) => url.pathname.endsWith('/messages'), limited);
  await customer.getByRole('button', { name: 'Dismiss this message' }).click();
  await composer.fill('');
  log('attachments are links; a 429 says how long to wait');

  // The customer never received the note: every later public event has arrived, in order.
  check((await messageWith(customer, 'SSO outage').count()) === 0, 'the customer must never see the internal note');
  check(!(await customer.content()).includes('SSO outage'), 'the note text is nowhere in the customer page');

  // --- Staff raises the issue level; the customer sees it live.
  await staff.getByRole('region', { name: 'Ticket' }).getByLabel('Issue level').selectOption('URGENT');
  await staff.getByRole('button', { name: 'Save routing' }).click();
  await customer.locator('#ticket-meta', { hasText: 'Urgent issue' }).waitFor();
  log('customer saw the new issue level live');

  await shot(customer, 'customer');

  // --- Unread marks: a customer message on a ticket staff is not looking at.
  const second = await rest('POST', '/tickets', await mintToken('Cid', 'CUSTOMER', 'cid'), { topic: 'Billing question', description: 'Invoice is wrong.' });
  // The new ticket reaches the open inbox live (`ticket_opened`), well before its 15 s re-read.
  const secondItem = staff.locator('#ticket-list button', { hasText: second.topic });
  await secondItem.waitFor({ timeout: 3000 });
  log('staff inbox showed a new ticket live');
  // Service levels are on (SLA_*_MINUTES): staff see the countdown to the next due time.
  await secondItem.locator('.sla', { hasText: /due in 10 h/ }).waitFor();
  check((await customer.locator('#ticket-list .sla').count()) === 0, 'customers see no service levels');
  log('staff inbox shows the service-level countdown');
  await rest('POST', `/tickets/${second.id}/messages`, await mintToken('Cid', 'CUSTOMER', 'cid'), { content: 'Any news?' });
  await staff.locator('#ticket-list button.unread', { hasText: second.topic }).locator('.badge').waitFor();
  log('staff inbox marked the other ticket unread');

  // --- Staff closes with a reason; both sides show it.
  await staff.getByLabel('Reason for closing').fill('Fixed on our side.');
  await staff.getByRole('button', { name: 'Close ticket' }).click();
  await staff.locator('#closed-banner', { hasText: 'closed' }).waitFor();
  await customer.locator('#closed-banner', { hasText: 'closed' }).waitFor();
  check(await customer.locator('#composer').isHidden(), 'the customer composer is gone on a closed ticket');
  check(await customer.locator('#ticket-meta', { hasText: 'Closed' }).isVisible(), 'the customer sees the status Closed');
  await staff.getByRole('button', { name: 'Reopen ticket' }).waitFor();
  log('closing shows on both sides');

  // --- The customer rates the closed ticket with stars; staff sees the rating live.
  check(await staff.locator('#feedback-form').isHidden(), 'staff get no star prompt');
  await customer.getByRole('group', { name: /How did we do/ }).waitFor();
  await customer.locator('.stars label').nth(3).click();
  check((await customer.locator('.stars label.on').count()) === 4, 'four stars light up');
  await customer.getByLabel(/^Comment/).fill('Quick <b>and</b> kind');
  await customer.getByRole('button', { name: 'Send rating' }).click();
  await customer.locator('#feedback-given', { hasText: 'Rated 4/5' }).waitFor();
  check(await customer.locator('#feedback-form').isHidden(), 'the prompt goes once rated');
  await staff.locator('#feedback-given', { hasText: 'Quick <b>and</b> kind' }).waitFor();
  check((await staff.locator('#feedback-given b').count()) === 0, 'the comment is text');
  log('the customer rated the ticket; staff saw it live');
  await shot(customer, 'customer-closed');

  // --- History (admin): the text before the edit.
  await staff.getByRole('button', { name: 'History' }).click();
  const posted = staff.locator('.timeline button', { hasText: 'Wrote “We are looking into it.”' });
  await posted.waitFor();
  check(await staff.locator('.timeline button', { hasText: 'Edited a message from “We are looking into it.” to “We are looking into it right now.”' }).isVisible(), 'the timeline tells the edit with the text before it');
  check(await staff.locator('.timeline', { hasText: 'via the web API' }).isVisible(), 'the timeline says through which door');
  await posted.click();
  await staff.locator('.snapshot .msg-body', { hasText: /^We are looking into it\.$/ }).waitFor();
  check((await staff.locator('.snapshot', { hasText: 'right now' }).count()) === 0, 'the snapshot before the edit does not show the edited text');
  check(await staff.locator('.snapshot dd', { hasText: 'Open' }).first().isVisible(), 'the ticket was open then');
  await shot(staff, 'history');
  // The slider moves through the same events from the keyboard.
  await staff.getByLabel('Show the ticket after event').focus();
  await staff.keyboard.press('End');
  await staff.locator('.snapshot dd', { hasText: 'Closed' }).waitFor();
  log('history shows the text before the edit');
  await staff.getByRole('button', { name: 'Back to the conversation' }).click();

  // --- Reports (admin): the last 30 days drawn as SVG charts in the page.
  check(await customer.locator('#show-reports').isHidden(), 'a customer has no reports button');
  await staff.getByRole('button', { name: 'Reports' }).click();
  await staff.locator('#chart-opened-closed svg').waitFor();
  const bars = await staff.locator('#chart-opened-closed rect.bar').count();
  check(bars === 60, `30 days of opened and closed bars, got ${bars}`);
  const today = await staff.locator('#chart-opened-closed rect.opened').last().evaluate((r) => Number(r.getAttribute('height')));
  check(today > 0, `today's opened bar has a height, got ${today}`);
  check(await staff.locator('#chart-medians circle.first').count() >= 1, 'a first-response median is plotted');
  check(await staff.locator('#chart-ratings rect.rating').count() === 5, 'five rating bars');
  check(await staff.locator('#reports-view', { hasText: 'closed' }).isVisible(), 'the figures are summed in words');
  await shot(staff, 'reports');
  await staff.getByRole('button', { name: 'Back to the inbox' }).click();
  await staff.locator('#workspace').waitFor();
  log('reports draw their charts');

  // --- A long conversation opens at its latest page and pages back through the cursor.
  const bulkOwner = await mintToken('Dee', 'CUSTOMER', 'dee');
  const bulk = await rest('POST', '/tickets', bulkOwner, { topic: 'A long thread', description: 'Many messages.' });
  for (let n = 1; n <= 130; n += 1) {
    await rest('POST', `/tickets/${bulk.id}/messages`, bulkOwner, { content: `line ${String(n).padStart(3, '0')}` });
  }
  await staff.getByRole('button', { name: 'Apply filters' }).click();
  await staff.locator('#ticket-list button', { hasText: bulk.topic }).click();
  await messageWith(staff, 'line 130').waitFor();
  const shown = await staff.locator('#messages li.msg').count();
  check(shown === 50, `the latest page only (50 messages) is rendered first, got ${shown}`);
  await staff.locator('#messages').evaluate((el) => { el.scrollTop = 0; });
  await staff.waitForFunction(() => document.querySelectorAll('#messages li.msg').length >= 100);
  await staff.locator('#messages').evaluate((el) => { el.scrollTop = 0; });
  await staff.waitForFunction(() => document.querySelectorAll('#messages li.msg').length === 130);
  const order = await staff.locator('#messages .msg-body').allTextContents();
  check(order[0] === 'line 001' && order[129] === 'line 130', `pages join in posting order: ${order[0]} … ${order[129]}`);
  log('a long conversation pages back on scroll');

  // --- Phone width: the customer's view stays readable.
  await customer.setViewportSize({ width: 390, height: 780 });
  const overflow = await customer.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  check(!overflow, 'no horizontal scrolling at phone width');
  await shot(customer, 'phone');

  // --- Errors in plain words: a refused token sends the user back to sign in.
  const third = await browser.newContext();
  const stranger = await third.newPage();
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const forged = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ id: 'eve', username: 'Eve', email: 'eve@example.com', role: 'ADMIN' })}.bm90LXNpZ25lZA`;
  await stranger.goto(`${BASE_URL}/#token=${forged}`);
  await stranger.locator('#alert', { hasText: 'Please sign in again' }).waitFor();
  await stranger.getByRole('heading', { name: 'Sign in' }).waitFor();
  await third.close();
  log('a refused token is explained');

  check(problems.length === 0, `problems in the pages:\n  ${problems.join('\n  ')}`);
}

const watchdog = setTimeout(() => {
  console.log(`FAIL console: did not finish within ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS);

try {
  await run();
  clearTimeout(watchdog);
  console.log('PASS console');
  process.exit(0);
} catch (error) {
  clearTimeout(watchdog);
  console.log(`FAIL console: ${error instanceof Failure ? error.message : error.stack || error}`);
  process.exit(1);
}
