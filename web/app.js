// The ticketd web console: sign-in, the customer's and the staff's views, live updates over
// Socket.IO. Plain ES modules, no build step; every user text is rendered as text.

import * as api from './api.js';
import { h, clear, messageItem, timeEl, words } from './dom.js';
import { showHistory, hideHistory } from './history.js';
import { showReports, hideReports } from './reports.js';

const $ = (id) => document.getElementById(id);
const MODE = document.querySelector('meta[name="ticketd-mode"]')?.content || 'PRODUCTION';
/** Messages per page when a conversation opens and when it pages back. */
const PAGE = 50;
/** How close to the bottom (px) still counts as "at the bottom", to follow new messages. */
const FOLLOW_PX = 80;
/** The inbox is re-read this often (ms): no socket event announces a new ticket. */
const INBOX_REFRESH_MS = 15000;

const state = {
  me: null,
  staff: false,
  admin: false,
  tickets: new Map(),
  listNext: null,
  filters: {},
  unread: new Map(),
  current: null,
  messages: new Map(),
  olderNext: null,
  loadingOlder: false,
  openSeq: 0,
  socket: null,
  refreshTimer: null,
};

// ---------------------------------------------------------------------------------------------
// Alerts and status

let alertTimer = null;

function showAlert(error) {
  const text = typeof error === 'string' ? error : error?.message || 'Something went wrong.';
  $('alert-text').textContent = text;
  $('alert').hidden = false;
  clearTimeout(alertTimer);
  const wait = error?.retryAfter ? (error.retryAfter + 1) * 1000 : 15000;
  alertTimer = setTimeout(hideAlert, Math.max(wait, 8000));
  if (error?.status === 401) signOut(text);
}

function hideAlert() {
  $('alert').hidden = true;
  $('alert-text').textContent = '';
}

function setLive(text, ok) {
  const el = $('live');
  el.textContent = text;
  el.className = text ? `live ${ok ? 'ok' : 'off'}` : 'live';
}

/** Runs an action from a button or form, showing any failure in plain words. */
async function attempt(button, action) {
  if (button) button.disabled = true;
  try {
    await action();
    return true;
  } catch (error) {
    showAlert(error);
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

function showSignIn(message) {
  $('workspace').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  setLive('', true);
  $('dev-card').hidden = MODE !== 'DEVELOPMENT';
  if (message) showAlert(message);
}

function signOut(message) {
  clearSearch();
  api.forgetToken();
  if (state.socket) {
    state.socket.disconnect();
    state.socket = null;
  }
  clearInterval(state.refreshTimer);
  Object.assign(state, {
    me: null, staff: false, admin: false, tickets: new Map(), listNext: null, unread: new Map(),
    current: null, messages: new Map(), olderNext: null,
  });
  clear($('ticket-list'));
  clear($('messages'));
  $('ticket-view').hidden = true;
  $('ticket-empty').hidden = false;
  hideHistory();
  hideReports();
  $('show-reports').hidden = true;
  showSignIn(typeof message === 'string' ? message : null);
}

async function signIn(token) {
  const claims = api.claimsOf(token);
  if (!claims || !claims.id || !claims.role) {
    api.forgetToken();
    showSignIn('That does not look like a token: it should be three parts separated by dots.');
    return;
  }
  api.saveToken(token);
  state.me = { id: String(claims.id), username: String(claims.username || claims.id), role: String(claims.role) };
  state.staff = state.me.role === 'AGENT' || state.me.role === 'ADMIN';
  state.admin = state.me.role === 'ADMIN';
  let failed = null;
  try {
    await loadTickets(true);
  } catch (error) {
    if (error.status === 401) {
      signOut(error.message);
      return;
    }
    failed = error; // e.g. offline or rate limited: show the workspace, the live updates retry
  }
  if (failed) showAlert(failed);
  else hideAlert();
  $('signin').hidden = true;
  $('workspace').hidden = false;
  $('sign-out').hidden = false;
  $('show-reports').hidden = !state.admin;
  $('who').textContent = `${state.me.username} · ${words(state.me.role)}`;
  $('list-title').textContent = state.staff ? 'Inbox' : 'My tickets';
  $('filters').hidden = !state.staff;
  $('new-ticket').hidden = state.staff;
  $('new-ticket').open = !state.staff && state.tickets.size === 0;
  $('internal-label').hidden = !state.staff;
  $('reply-label').hidden = !state.staff;
  if (state.staff) loadReplies();
  $('staff-form').hidden = !state.staff;
  document.body.classList.toggle('staff', state.staff);
  connectSocket(token);
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(() => refreshInbox().catch(() => {}), INBOX_REFRESH_MS);
  $('main').focus();
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token-input').value.trim();
  $('token-input').value = '';
  if (!token) {
    showAlert('Paste a token first.');
    return;
  }
  signIn(token);
});

$('dev-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('dev-name').value.trim();
  if (!username) {
    showAlert('Type a name first.');
    $('dev-name').focus();
    return;
  }
  const body = { username, role: $('dev-role').value };
  const id = $('dev-id').value.trim();
  if (id) body.id = id;
  await attempt(event.submitter, async () => {
    const { data } = await api.post('/api/v1/dev/token', body, { token: '' });
    await signIn(data.token);
  });
});

$('sign-out').addEventListener('click', () => signOut());
$('alert-close').addEventListener('click', hideAlert);

// ---------------------------------------------------------------------------------------------
// Live updates

function connectSocket(token) {
  if (typeof window.io !== 'function') {
    setLive('Live updates unavailable', false);
    return;
  }
  // Every event carries its position in the log; a reconnection hands back the last one seen,
  // and the server replays what happened meanwhile before the live events (docs/api.md).
  const socket = window.io({ auth: { token, positions: true }, transports: ['websocket', 'polling'] });
  state.socket = socket;
  let last = null;
  let connectedBefore = false;
  socket.onAny((event, payload, at) => {
    if (at && Number.isInteger(at.position)) last = at.position;
  });
  socket.io.on('reconnect_attempt', () => {
    socket.auth = last === null ? { token, positions: true } : { token, since: last };
  });
  socket.on('connect', () => {
    setLive('Live', true);
    // Without a position the missed events cannot be replayed: re-read instead.
    if (connectedBefore && last === null) resync();
    connectedBefore = true;
  });
  socket.on('resync_required', ({ position }) => {
    last = position;
    resync();
  });
  socket.on('disconnect', () => setLive('Reconnecting…', false));
  socket.on('connect_error', () => setLive('Offline, retrying…', false));
  socket.on('error', (e) => showAlert(`Live updates stopped: ${e?.message || 'unknown error'}`));
  socket.on('message', onMessage);
  socket.on('edit_message', (m) => {
    if (state.current?.id === m.ticket_id) upsertMessage(m);
  });
  socket.on('delete_message', (m) => {
    if (state.current?.id === m.ticket_id) markDeleted(m.id);
  });
  socket.on('ticket_closed', onTicket);
  socket.on('ticket_updated', onTicket);
  socket.on('ticket_opened', onTicket);
}

function onMessage(m) {
  if (state.current?.id === m.ticket_id) {
    upsertMessage(m, true);
  } else if (m.author_id !== state.me?.id) {
    state.unread.set(m.ticket_id, (state.unread.get(m.ticket_id) || 0) + 1);
  }
  if (!state.tickets.has(m.ticket_id)) refreshInbox().catch(() => {});
  renderList();
}

function onTicket(t) {
  if (!state.staff && t.user_id !== state.me?.id) return;
  state.tickets.set(t.id, t);
  if (state.current?.id === t.id) {
    state.current = t;
    renderTicketHead();
  }
  renderList();
}

/** After a reconnection: re-read what may have changed while events could not arrive. */
async function resync() {
  await refreshInbox().catch(() => {});
  if (state.current) {
    const id = state.current.id;
    try {
      const { data } = await api.get(`/tickets/${id}`);
      if (state.current?.id === id) onTicket(data);
      const page = await api.get(`/tickets/${id}/messages${api.query({ order: 'desc', limit: PAGE })}`);
      if (state.current?.id !== id) return;
      const seen = new Set(page.data.map((m) => m.id));
      const oldest = page.data.at(-1);
      for (const [mid, m] of state.messages) {
        if (!seen.has(mid) && oldest && m.created_at >= oldest.created_at) markDeleted(mid);
      }
      for (const m of page.data.reverse()) upsertMessage(m, true);
    } catch (error) {
      showAlert(error);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The ticket list (a customer's tickets, or the staff inbox)

function sortedTickets() {
  return [...state.tickets.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
}

function filterQuery(extra = {}) {
  return api.query({ ...state.filters, ...extra });
}

function matchesFilters(t) {
  const f = state.filters;
  const holder = f.assignee_id === 'me' ? state.me?.id : f.assignee_id === 'none' ? null : undefined;
  return (!f.status || t.status === f.status) && (!f.issue_level || t.issue_level === f.issue_level)
    && (!f.support_role || t.support_role === f.support_role) && (!f.user_id || t.user_id === f.user_id)
    && (holder === undefined || t.assignee_id === holder)
    && (!f.tag || (t.tags || []).includes(f.tag.toLowerCase()));
}

/** Who holds a ticket, in words. */
function holderText(t) {
  if (!t.assignee_id) return 'unclaimed';
  return t.assignee_id === state.me?.id ? 'held by you' : `held by ${t.assignee_name || t.assignee_id}`;
}

async function loadTickets(reset) {
  if (reset) {
    const { data, next } = await api.get(`/tickets${filterQuery()}`);
    state.tickets = new Map(data.map((t) => [t.id, t]));
    state.listNext = next;
  } else if (state.listNext) {
    const { data, next } = await api.get(state.listNext);
    for (const t of data) state.tickets.set(t.id, t);
    state.listNext = next;
  }
  renderList();
}

/** Re-reads the first page and merges it: tickets opened since appear, marked new. */
async function refreshInbox() {
  if (!state.me) return;
  const { data } = await api.get(`/tickets${filterQuery()}`);
  for (const t of data) {
    if (!state.tickets.has(t.id) && state.tickets.size > 0 && state.staff && t.id !== state.current?.id) {
      state.unread.set(t.id, state.unread.get(t.id) || 1);
    }
    state.tickets.set(t.id, t);
  }
  renderList();
}

function renderList() {
  const list = $('ticket-list');
  const focusedId = document.activeElement?.closest?.('#ticket-list [data-id]')?.dataset.id;
  clear(list);
  const tickets = sortedTickets().filter((t) => !state.staff || matchesFilters(t) || t.id === state.current?.id);
  for (const t of tickets) {
    const unread = state.unread.get(t.id) || 0;
    const current = state.current?.id === t.id;
    const label = h(
      'button',
      { type: 'button', class: `ticket-btn${unread ? ' unread' : ''}`, 'data-id': t.id, 'aria-current': current ? 'true' : false, onclick: () => openTicket(t.id) },
      h('span', { class: 'topic' }, t.topic),
      unread ? h('span', { class: 'badge', 'aria-label': `${unread} unread` }, String(unread)) : null,
      h(
        'span',
        { class: 'ticket-line' },
        h('span', { class: `status status-${t.status.toLowerCase()}` }, words(t.status)),
        ' · ', h('span', { class: `level level-${t.issue_level.toLowerCase()}` }, words(t.issue_level)),
        state.staff ? ` · ${words(t.support_role)} · ${t.user_id} · ${holderText(t)}` : '',
        ' · ', timeEl(t.created_at),
        state.staff && t.sla ? ' · ' : '', state.staff ? slaText(t) : null,
      ),
      state.staff && t.tags?.length ? h('span', { class: 'chips small' }, ...t.tags.map((tag) => h('span', { class: 'chip' }, tag))) : null,
    );
    list.appendChild(h('li', {}, label));
  }
  $('list-empty').hidden = tickets.length > 0;
  $('list-empty').textContent = state.staff ? 'No tickets match these filters.' : 'You have no tickets yet.';
  $('more-tickets').hidden = !state.listNext;
  if (focusedId) list.querySelector(`[data-id="${CSS.escape(focusedId)}"]`)?.focus();
}

$('more-tickets').addEventListener('click', (event) => attempt(event.currentTarget, () => loadTickets(false)));

$('filters').addEventListener('submit', (event) => {
  event.preventDefault();
  state.filters = {
    status: $('f-status').value,
    issue_level: $('f-level').value,
    support_role: $('f-team').value,
    user_id: $('f-user').value.trim(),
    assignee_id: $('f-holder').value,
    tag: $('f-tag').value.trim(),
  };
  attempt(event.submitter, () => loadTickets(true));
});

$('new-ticket-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const topic = $('new-topic').value.trim();
  const description = $('new-description').value.trim();
  if (!topic || !description) {
    showAlert('Please give the ticket a topic and describe the problem.');
    (topic ? $('new-description') : $('new-topic')).focus();
    return;
  }
  attempt(event.submitter, async () => {
    const { data } = await api.post('/tickets', { topic, description });
    state.tickets.set(data.id, data);
    $('new-topic').value = '';
    $('new-description').value = '';
    $('new-ticket').open = false;
    renderList();
    await openTicket(data.id);
    $('composer-text').focus();
  });
});

// ---------------------------------------------------------------------------------------------
// Search over the inbox (issue 17 part 1, ADR 0024)

/** Typing pauses this long (ms) before the box searches by itself. */
const SEARCH_DELAY_MS = 300;
const search = { timer: null, seq: 0, next: null };

/**
 * A server highlight as nodes. It is escaped text with only `<mark>…</mark>` added; rather than
 * parse it as HTML, it is cut at the marks and unescaped into text nodes and `<mark>` elements.
 */
function highlightNodes(html) {
  const nodes = [];
  let marked = false;
  for (const part of String(html).split(/(<mark>|<\/mark>)/)) {
    if (part === '<mark>' || part === '</mark>') {
      marked = part === '<mark>';
    } else if (part) {
      const text = part.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'").replace(/&amp;/g, '&');
      nodes.push(marked ? h('mark', {}, text) : text);
    }
  }
  return nodes;
}

function hitItem(t) {
  return h('li', {}, h(
    'button',
    { type: 'button', class: 'ticket-btn hit', 'data-id': t.id, onclick: () => openTicket(t.id) },
    h('span', { class: 'topic' }, t.topic),
    h('span', { class: 'ticket-line' }, h('span', { class: `status status-${t.status.toLowerCase()}` }, words(t.status)), ' · ', timeEl(t.created_at)),
    ...(t.highlights || []).map((x) => h('span', { class: 'excerpt' }, ...highlightNodes(x))),
  ));
}

/** Searches for the box's words (with the inbox filters, for staff); empty words clear it. */
async function runSearch(more = false) {
  const q = $('search-q').value.trim();
  if (!q) return clearSearch();
  const seq = ++search.seq;
  const { data, next } = await api.get(more ? search.next : `/search${filterQuery({ q })}`);
  if (seq !== search.seq) return; // a newer search answered first
  if (!more) clear($('search-list'));
  for (const t of data) $('search-list').appendChild(hitItem(t));
  search.next = next;
  $('search-results').hidden = false;
  $('search-empty').hidden = $('search-list').childElementCount > 0;
  $('more-hits').hidden = !next;
}

function clearSearch() {
  search.seq += 1;
  clearTimeout(search.timer);
  $('search-q').value = '';
  clear($('search-list'));
  $('search-results').hidden = true;
}

$('search-form').addEventListener('submit', (event) => {
  event.preventDefault();
  clearTimeout(search.timer);
  attempt(event.submitter, () => runSearch());
});
$('search-q').addEventListener('input', () => {
  clearTimeout(search.timer);
  search.timer = setTimeout(() => runSearch().catch(showAlert), SEARCH_DELAY_MS);
});
$('more-hits').addEventListener('click', (event) => attempt(event.currentTarget, () => runSearch(true)));
$('clear-search').addEventListener('click', clearSearch);

// ---------------------------------------------------------------------------------------------
// One ticket: header, conversation, composer

function canModerate() {
  return state.staff;
}

function renderTicketHead() {
  const t = state.current;
  if (!t) return;
  $('ticket-title').textContent = t.topic;
  const closed = t.status === 'CLOSED';
  clear($('ticket-meta'));
  $('ticket-meta').append(
    h('span', { class: `status status-${t.status.toLowerCase()}` }, words(t.status)),
    ' · ', h('span', { class: `level level-${t.issue_level.toLowerCase()}` }, `${words(t.issue_level)} issue`),
    ` · ${words(t.support_role)} team · opened `, timeEl(t.created_at, false),
    state.staff ? ` by ${t.user_id} (${words(t.user_role)})` : '',
    ' · ', h('span', { class: 'holder' }, t.assignee_id ? (state.staff ? holderText(t) : `with ${t.assignee_name || 'our team'}`) : (state.staff ? 'unclaimed' : 'waiting for our team')),
  );
  const mine = t.assignee_id && t.assignee_id === state.me?.id;
  $('claim').hidden = !state.staff || closed || mine;
  $('claim').textContent = t.assignee_id && !mine ? 'Take over' : 'Claim';
  $('release').hidden = !state.staff || !t.assignee_id || !(mine || state.admin);
  $('tag-editor').hidden = !state.staff;
  const chips = $('tag-chips');
  clear(chips);
  for (const tag of t.tags || []) {
    chips.appendChild(h('li', { class: 'chip' }, tag, h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove tag ${tag}`, onclick: (event) => saveTags(event.currentTarget, (t.tags || []).filter((x) => x !== tag)) }, '×')));
  }
  $('ticket-desc').textContent = t.description;
  $('t-team').value = t.support_role;
  $('t-level').value = t.issue_level;
  $('close-form').hidden = closed;
  $('reopen').hidden = !(closed && state.staff);
  $('show-history').hidden = !state.admin;
  $('composer-fields').disabled = closed;
  $('composer').hidden = closed;
  $('closed-banner').hidden = !closed;
  $('closed-banner').textContent = closed
    ? (state.staff ? 'This ticket is closed. Reopen it to write again.' : 'This ticket is closed. You can no longer send messages here; open a new ticket if you need more help.')
    : '';
  $('ticket-view').classList.toggle('closed', closed);
  renderFeedback(t, closed);
}

/** The owner's star prompt on their closed, unrated ticket; the rating once given. */
function renderFeedback(t, closed) {
  $('feedback-form').hidden = !(closed && !state.staff && !t.feedback && t.user_id === state.me?.id);
  $('feedback-given').hidden = !t.feedback;
  $('feedback-given').textContent = t.feedback
    ? `Rated ${t.feedback.rating}/5 ${'★'.repeat(t.feedback.rating)}${t.feedback.comment ? ` — “${t.feedback.comment}”` : ''}`
    : '';
}

// The picked star and those below it light up.
$('feedback-form').addEventListener('change', () => {
  const picked = Number($('feedback-form').querySelector('input[name="rating"]:checked')?.value || 0);
  for (const label of $('feedback-form').querySelectorAll('.stars label')) {
    label.classList.toggle('on', Number(label.querySelector('input').value) <= picked);
  }
});

$('feedback-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const t = state.current;
  const picked = $('feedback-form').querySelector('input[name="rating"]:checked');
  if (!t) return;
  if (!picked) {
    showAlert('Please pick from 1 to 5 stars.');
    return;
  }
  const comment = $('feedback-comment').value.trim();
  const body = comment ? { rating: Number(picked.value), comment } : { rating: Number(picked.value) };
  attempt(event.submitter, async () => {
    onTicket((await api.post(`/tickets/${t.id}/feedback`, body)).data);
    $('feedback-comment').value = '';
  });
});

/** Staff: the countdown to the next service-level due time, or the missed targets (ADR 0025). */
function slaText(t) {
  if (!t.sla) return null;
  if (t.sla.breached.length) {
    return h('span', { class: 'sla sla-breached' }, `SLA missed: ${t.sla.breached.map(words).join(', ')}`);
  }
  const due = [
    t.first_response_at == null ? t.sla.first_response_due_at : null,
    t.status === 'OPEN' ? t.sla.resolution_due_at : null,
  ].filter((d) => d != null);
  if (!due.length) return null;
  const left = Math.min(...due) - Date.now();
  const minutes = Math.round(Math.abs(left) / 60000);
  const span = minutes >= 120 ? `${Math.round(minutes / 60)} h` : `${minutes} min`;
  return h('span', { class: 'sla' }, left >= 0 ? `due in ${span}` : `overdue by ${span}`);
}

async function openTicket(id) {
  const seq = ++state.openSeq;
  hideHistory();
  const ticket = state.tickets.get(id);
  if (!ticket) return;
  state.current = ticket;
  state.messages = new Map();
  state.olderNext = null;
  state.unread.delete(id);
  clear($('messages'));
  $('older').hidden = true;
  $('jump').hidden = true;
  $('ticket-empty').hidden = true;
  $('ticket-view').hidden = false;
  $('workspace').classList.add('showing-ticket');
  $('composer-internal').checked = false;
  renderTicketHead();
  renderList();
  try {
    const { data, next } = await api.get(`/tickets/${id}/messages${api.query({ order: 'desc', limit: PAGE })}`);
    if (seq !== state.openSeq) return;
    for (const m of data.reverse()) upsertMessage(m, false);
    state.olderNext = next;
    $('older').hidden = !next;
    scrollToBottom();
  } catch (error) {
    if (seq === state.openSeq) showAlert(error);
  }
  $('ticket-title').focus();
}

$('back').addEventListener('click', () => {
  $('workspace').classList.remove('showing-ticket');
  const id = state.current?.id;
  if (id) $('ticket-list').querySelector(`[data-id="${CSS.escape(id)}"]`)?.focus();
});

function atBottom() {
  const el = $('messages');
  return el.scrollHeight - el.scrollTop - el.clientHeight < FOLLOW_PX;
}

function scrollToBottom() {
  const el = $('messages');
  el.scrollTop = el.scrollHeight;
  $('jump').hidden = true;
}

$('jump').addEventListener('click', () => {
  scrollToBottom();
  $('messages').focus();
});

function messageElement(m) {
  const t = state.current;
  const mine = m.author_id === state.me.id;
  const who = m.author_id === t.user_id ? 'customer' : 'staff';
  const actions = mine || canModerate()
    ? h(
      'div',
      { class: 'msg-actions' },
      h('button', { type: 'button', class: 'link', onclick: () => startEdit(m.id) }, 'Edit'),
      h('button', { type: 'button', class: 'link danger', onclick: (e) => confirmDelete(e.currentTarget, m.id) }, 'Delete'),
    )
    : null;
  const li = messageItem(m, { who, mine, actions });
  li.setAttribute('aria-label', `${m.internal ? 'Internal note' : 'Message'} from ${m.author_name}`);
  return li;
}

/** Adds a message, or replaces it when already shown; `live` follows it to the bottom. */
function upsertMessage(m, live = false) {
  const list = $('messages');
  const old = list.querySelector(`li[data-id="${CSS.escape(m.id)}"]`);
  const known = state.messages.get(m.id);
  if (known && known.updated_at > m.updated_at) return;
  state.messages.set(m.id, m);
  const el = messageElement(m);
  if (old) {
    if (old.querySelector('.edit-form')) return; // being edited here: the save shows the result
    old.replaceWith(el);
    return;
  }
  const follow = atBottom();
  // Keep posting order: a late arrival goes before the first message that is newer.
  let before = null;
  for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
    const other = state.messages.get(node.dataset.id);
    if (other && (other.created_at < m.created_at || (other.created_at === m.created_at && other.id < m.id))) break;
    if (other) before = node;
  }
  list.insertBefore(el, before);
  if (live) {
    if (follow || m.author_id === state.me.id) scrollToBottom();
    else $('jump').hidden = false;
  }
}

function markDeleted(id) {
  const old = $('messages').querySelector(`li[data-id="${CSS.escape(id)}"]`);
  state.messages.delete(id);
  if (!old) return;
  const tomb = h('li', { class: 'msg deleted', 'data-id': id }, h('p', { class: 'msg-body' }, 'This message was deleted.'));
  old.replaceWith(tomb);
}

function startEdit(id) {
  const m = state.messages.get(id);
  const li = $('messages').querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (!m || !li || li.querySelector('.edit-form')) return;
  const fieldId = `edit-${id}`;
  const area = h('textarea', { id: fieldId, rows: 3, maxlength: 5000 });
  area.value = m.content;
  const cancel = () => {
    const latest = state.messages.get(id);
    if (latest) li.replaceWith(messageElement(latest));
    else markDeleted(id);
    $('messages').querySelector(`li[data-id="${CSS.escape(id)}"] button`)?.focus();
  };
  const form = h(
    'form',
    { class: 'edit-form', novalidate: true },
    h('label', { for: fieldId }, 'Edit message'),
    area,
    h('div', { class: 'composer-row' }, h('button', { type: 'submit' }, 'Save message'), h('button', { type: 'button', class: 'link', onclick: cancel }, 'Cancel')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = area.value.trim();
    if (!content) {
      showAlert('A message cannot be empty; delete it instead.');
      return;
    }
    attempt(event.submitter, async () => {
      const { data } = await api.patch(`/tickets/${m.ticket_id}/messages/${id}`, { content });
      state.messages.set(id, data);
      li.replaceWith(messageElement(data));
    });
  });
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') cancel();
  });
  li.querySelector('.msg-body').replaceWith(form);
  li.querySelector('.msg-actions')?.remove();
  area.focus();
}

function confirmDelete(button, id) {
  if (button.dataset.armed !== 'yes') {
    button.dataset.armed = 'yes';
    button.textContent = 'Confirm delete';
    setTimeout(() => {
      if (button.isConnected) {
        button.dataset.armed = '';
        button.textContent = 'Delete';
      }
    }, 5000);
    return;
  }
  const m = state.messages.get(id);
  if (!m) return;
  attempt(button, async () => {
    await api.del(`/tickets/${m.ticket_id}/messages/${id}`);
    markDeleted(id);
  });
}

async function loadOlder() {
  if (!state.olderNext || state.loadingOlder) return;
  state.loadingOlder = true;
  const id = state.current?.id;
  const el = $('messages');
  try {
    const { data, next } = await api.get(state.olderNext);
    if (state.current?.id !== id) return;
    const height = el.scrollHeight;
    const top = el.scrollTop;
    const fragment = document.createDocumentFragment();
    for (const m of data.reverse()) {
      if (state.messages.has(m.id)) continue;
      state.messages.set(m.id, m);
      fragment.appendChild(messageElement(m));
    }
    el.insertBefore(fragment, el.firstElementChild);
    // What was on screen stays where it was.
    el.scrollTop = top + (el.scrollHeight - height);
    state.olderNext = next;
    $('older').hidden = !next;
  } catch (error) {
    showAlert(error);
  } finally {
    state.loadingOlder = false;
  }
}

$('messages').addEventListener('scroll', () => {
  const el = $('messages');
  if (el.scrollTop < 400) loadOlder();
  if (atBottom()) $('jump').hidden = true;
}, { passive: true });
$('older').addEventListener('click', () => loadOlder());

function splitLinks(text) {
  return text.split(/\s+/).map((s) => s.trim()).filter(Boolean);
}

$('composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const t = state.current;
  const area = $('composer-text');
  const content = area.value.trim();
  if (!t) return;
  if (!content) {
    showAlert('Write a message first.');
    area.focus();
    return;
  }
  const body = { content };
  const links = splitLinks($('composer-links').value);
  if (links.length) body.attachments = links;
  if (state.staff && $('composer-internal').checked) body.internal = true;
  const ok = await attempt($('send'), async () => {
    const { data } = await api.post(`/tickets/${t.id}/messages`, body);
    if (state.current?.id === t.id) upsertMessage(data, true);
  });
  if (ok) {
    area.value = '';
    $('composer-links').value = '';
    $('composer-internal').checked = false;
  }
  area.focus();
});

// Saved replies (staff): the picker fills the composer with a reply's text, to be edited
// before it is sent. The list is read again whenever the picker is opened, so a reply an
// admin just saved is there.
async function loadReplies() {
  let replies = [];
  try {
    ({ data: replies } = await api.get('/replies'));
  } catch {
    return; // offline or rate limited: keep the list we have
  }
  state.replies = new Map(replies.map((r) => [r.name, r.content]));
  const picker = $('composer-reply');
  const chosen = picker.value;
  clear(picker);
  picker.appendChild(h('option', { value: '' }, replies.length ? 'Insert…' : 'None saved'));
  for (const r of replies) picker.appendChild(h('option', { value: r.name }, r.name));
  picker.value = state.replies.has(chosen) ? chosen : '';
}

$('composer-reply').addEventListener('focus', () => loadReplies());
$('composer-reply').addEventListener('change', (event) => {
  const content = state.replies?.get(event.currentTarget.value);
  event.currentTarget.value = '';
  if (content === undefined) return;
  const area = $('composer-text');
  area.value = content;
  area.focus();
  area.setSelectionRange(content.length, content.length);
});

$('composer-text').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
});

$('close-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const t = state.current;
  if (!t) return;
  const reason = $('close-reason').value.trim();
  attempt(event.submitter, async () => {
    const { data } = await api.post(`/tickets/${t.id}/close`, reason ? { reason } : {});
    $('close-reason').value = '';
    onTicket(data);
  });
});

$('reopen').addEventListener('click', (event) => {
  const t = state.current;
  if (!t) return;
  attempt(event.currentTarget, async () => {
    const { data } = await api.post(`/tickets/${t.id}/reopen`);
    onTicket(data);
    $('composer-text').focus();
  });
});

$('staff-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const t = state.current;
  if (!t) return;
  const body = {};
  if ($('t-team').value !== t.support_role) body.support_role = $('t-team').value;
  if ($('t-level').value !== t.issue_level) body.issue_level = $('t-level').value;
  if (!Object.keys(body).length) {
    showAlert('Nothing to save: choose another team or issue level first.');
    return;
  }
  attempt(event.submitter, async () => {
    const { data } = await api.patch(`/tickets/${t.id}`, body);
    onTicket(data);
  });
});

$('claim').addEventListener('click', (event) => {
  const t = state.current;
  if (!t) return;
  attempt(event.currentTarget, async () => onTicket((await api.post(`/tickets/${t.id}/claim`)).data));
});

$('release').addEventListener('click', (event) => {
  const t = state.current;
  if (!t) return;
  attempt(event.currentTarget, async () => onTicket((await api.post(`/tickets/${t.id}/unclaim`)).data));
});

/** Replaces the current ticket's tags (staff). */
function saveTags(button, tags) {
  const t = state.current;
  if (!t) return;
  attempt(button, async () => onTicket((await api.patch(`/tickets/${t.id}`, { tags })).data));
}

$('tag-editor').addEventListener('submit', (event) => {
  event.preventDefault();
  const tag = $('tag-input').value.trim();
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(tag)) {
    showAlert('A tag is 1 to 32 letters, digits, - or _.');
    $('tag-input').focus();
    return;
  }
  $('tag-input').value = '';
  saveTags(event.submitter, [...(state.current?.tags || []), tag]);
});

$('show-history').addEventListener('click', () => {
  if (!state.current) return;
  $('ticket-view').hidden = true;
  showHistory(state.current, {
    onError: showAlert,
    onClose: () => {
      $('ticket-view').hidden = false;
      $('show-history').focus();
    },
    viewerId: state.me.id,
  });
});

$('show-reports').addEventListener('click', () => {
  $('workspace').hidden = true;
  showReports({
    onError: showAlert,
    onClose: () => {
      $('workspace').hidden = false;
      $('show-reports').focus();
    },
  });
});

// ---------------------------------------------------------------------------------------------
// Start

function start() {
  $('dev-card').hidden = MODE !== 'DEVELOPMENT';
  const fragment = new URLSearchParams(location.hash.slice(1));
  const handed = fragment.get('token');
  if (handed !== null) {
    // Take the token out of the address bar and the tab's history at once.
    history.replaceState(null, '', location.pathname + location.search);
    if (handed.trim()) api.saveToken(handed.trim());
  }
  const token = api.savedToken();
  if (token) signIn(token);
  else showSignIn();
}

document.title = `ticketd console${MODE === 'DEVELOPMENT' ? ' (development)' : ''}`;
window.addEventListener('error', () => showAlert('The console hit an unexpected problem. Reloading the page may help.'));
start();
