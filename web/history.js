// The history view (ADMIN): a ticket's event timeline — who, when, through which door — and the
// ticket with its messages as they were right after any event, read through the API's `as_of`.

import * as api from './api.js';
import { h, clear, messageItem, when, words } from './dom.js';

const VIA = { web: 'the web API', socket: 'Socket.IO', discord: 'Discord', cli: 'the command line' };
/** Messages shown per snapshot page. */
const SNAPSHOT_PAGE = 100;
/** Timeline entries rendered at first, and added per "Show earlier events". */
const TIMELINE_CHUNK = 200;

let session = 0;

function quote(text, max = 80) {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  return `“${flat.length > max ? `${flat.slice(0, max - 1)}…` : flat}”`;
}

/** What each event did, in words; `before` maps message ids to their text before this event. */
function summary(e, before) {
  const d = e.data || {};
  switch (e.type) {
    case 'TicketOpened':
      return `Opened the ticket ${quote(d.topic)} (${words(d.issue_level)}, ${words(d.support_role)} team)`;
    case 'MessagePosted':
      return `${d.internal ? 'Wrote an internal note' : 'Wrote'} ${quote(d.content)}${d.attachments?.length ? ` with ${d.attachments.length} attachment(s)` : ''}`;
    case 'MessageEdited':
      return before.has(d.message_id)
        ? `Edited a message from ${quote(before.get(d.message_id))} to ${quote(d.content)}`
        : `Edited a message to ${quote(d.content)}`;
    case 'MessageDeleted':
      return before.has(d.message_id) ? `Deleted the message ${quote(before.get(d.message_id))}` : 'Deleted a message';
    case 'SupportRoleChanged':
      return `Moved the ticket from the ${words(d.from)} team to the ${words(d.to)} team`;
    case 'IssueLevelChanged':
      return `Changed the issue level from ${words(d.from)} to ${words(d.to)}`;
    case 'TicketClosed':
      return `Closed the ticket${d.reason ? ` (reason: ${quote(d.reason)})` : ''}`;
    case 'TicketReopened':
      return 'Reopened the ticket';
    default:
      return e.type;
  }
}

/** Each event's summary, computed with the message texts as they were just before it. */
/** Every event of the ticket, following the pages the server links (1,000 events a page). */
async function allEvents(ticketId) {
  const events = [];
  let path = `/tickets/${ticketId}/events`;
  while (path) {
    const { data, next } = await api.get(path);
    events.push(...data);
    path = next;
  }
  return events;
}

function summaries(events) {
  const texts = new Map();
  return events.map((e) => {
    const text = summary(e, texts);
    const d = e.data || {};
    if (e.type === 'MessagePosted' || e.type === 'MessageEdited') texts.set(d.message_id, d.content);
    return text;
  });
}

export function hideHistory() {
  session += 1;
  const view = document.getElementById('history-view');
  view.hidden = true;
  clear(view);
}

export async function showHistory(ticket, { onError, onClose, viewerId }) {
  const mine = ++session;
  const view = document.getElementById('history-view');
  clear(view);
  view.hidden = false;
  const title = h('h2', { id: 'history-title', tabindex: -1 }, 'History: ', ticket.topic);
  const back = h('button', { type: 'button', class: 'back-history' }, 'Back to the conversation');
  back.addEventListener('click', () => {
    hideHistory();
    onClose();
  });
  const intro = h('p', { class: 'hint' }, 'Loading the events…');
  view.append(h('div', { class: 'history-head' }, back, title), intro);
  title.focus();

  let events;
  try {
    events = await allEvents(ticket.id);
  } catch (error) {
    if (mine === session) {
      intro.textContent = 'The history could not be loaded.';
      onError(error);
    }
    return;
  }
  if (mine !== session) return;
  const texts = summaries(events);
  intro.textContent = `${events.length} events, oldest first. Pick one, or move the slider, to see the ticket exactly as it was right after it.`;

  const slider = h('input', { id: 'history-slider', type: 'range', min: 1, max: events.length, step: 1, value: events.length });
  const output = h('output', { for: 'history-slider', id: 'history-position', class: 'history-position' });
  const timeline = h('ol', { class: 'timeline', 'aria-label': 'Events' });
  const snapshot = h('section', { class: 'snapshot', 'aria-labelledby': 'snapshot-title', 'aria-live': 'polite' });
  view.append(
    h('div', { class: 'slider-row' }, h('label', { for: 'history-slider' }, 'Show the ticket after event'), slider, output),
    h('div', { class: 'history-body' }, timeline, snapshot),
  );

  // A long history renders its latest events first and earlier ones on demand.
  const buttons = new Array(events.length);
  let first = events.length;
  const earlier = h('button', { type: 'button', class: 'more', hidden: true });
  timeline.before(earlier);
  const eventButton = (i) => {
    const e = events[i];
    const a = e.actor || {};
    const button = h(
      'button',
      { type: 'button', class: 'event', 'data-version': e.version, 'aria-pressed': 'false', onclick: () => select(i, true) },
      h('span', { class: 'event-top' }, h('strong', {}, `#${e.version} ${words(e.type.replace(/([a-z])([A-Z])/g, '$1_$2'))}`), ' · ', h('time', { datetime: new Date(e.recorded_at).toISOString() }, when(e.recorded_at))),
      h('span', { class: 'event-who' }, `${a.name} (${words(a.role)}, id ${a.id}) via ${VIA[a.via] || a.via}`),
      h('span', { class: 'event-what' }, texts[i]),
    );
    buttons[i] = button;
    return h('li', {}, button);
  };
  const renderFrom = (start) => {
    start = Math.max(0, start);
    if (start >= first) return;
    const fragment = document.createDocumentFragment();
    for (let i = start; i < first; i += 1) fragment.appendChild(eventButton(i));
    timeline.insertBefore(fragment, timeline.firstElementChild);
    first = start;
    earlier.hidden = first === 0;
    earlier.textContent = `Show earlier events (${first} more)`;
  };
  earlier.addEventListener('click', () => renderFrom(first - TIMELINE_CHUNK));
  renderFrom(events.length - TIMELINE_CHUNK);

  const cache = new Map();
  let timer = null;
  let selected = -1;

  function select(i, now) {
    if (i < first) renderFrom(i - 20);
    buttons[selected]?.setAttribute('aria-pressed', 'false');
    selected = i;
    buttons[i].setAttribute('aria-pressed', 'true');
    slider.value = String(i + 1);
    const e = events[i];
    output.textContent = `Event ${i + 1} of ${events.length}: ${words(e.type.replace(/([a-z])([A-Z])/g, '$1_$2'))}, ${when(e.recorded_at)}`;
    clearTimeout(timer);
    timer = setTimeout(() => render(i), now ? 0 : 250);
  }

  async function snapshotAt(asOf) {
    if (!cache.has(asOf)) {
      const load = Promise.all([
        api.get(`/tickets/${ticket.id}${api.query({ as_of: asOf })}`),
        api.get(`/tickets/${ticket.id}/messages${api.query({ as_of: asOf, order: 'desc', limit: SNAPSHOT_PAGE })}`),
      ]);
      cache.set(asOf, load);
      load.catch(() => cache.delete(asOf));
    }
    return cache.get(asOf);
  }

  async function render(i) {
    const e = events[i];
    let ticketThen;
    let page;
    try {
      [{ data: ticketThen }, page] = await snapshotAt(e.recorded_at);
    } catch (error) {
      if (mine === session) onError(error);
      return;
    }
    if (mine !== session || selected !== i) return;
    const same = events.filter((o) => o.recorded_at === e.recorded_at).length;
    const focusId = e.data?.message_id;
    const list = h('ol', { class: 'messages snapshot-messages', 'aria-label': 'Messages then' });
    const add = (messages) => {
      for (const m of messages) {
        const item = messageItem(m, { who: m.author_id === ticketThen.user_id ? 'customer' : 'staff', mine: m.author_id === viewerId });
        if (m.id === focusId) item.classList.add('focus-msg');
        list.insertBefore(item, list.firstElementChild);
      }
    };
    add(page.data);
    let next = page.next;
    const more = h('button', { type: 'button', class: 'more', hidden: !next }, 'Show older messages');
    more.addEventListener('click', async () => {
      try {
        const older = await api.get(next);
        add(older.data);
        next = older.next;
        more.hidden = !next;
      } catch (error) {
        onError(error);
      }
    });
    clear(snapshot);
    snapshot.append(
      h('h3', { id: 'snapshot-title' }, `As it was after event #${e.version}`),
      same > 1 ? h('p', { class: 'hint' }, `${same} events were recorded in the same millisecond; this view includes all of them.`) : '',
      h(
        'dl',
        { class: 'snapshot-ticket' },
        h('dt', {}, 'Topic'), h('dd', {}, ticketThen.topic),
        h('dt', {}, 'Status'), h('dd', {}, words(ticketThen.status)),
        h('dt', {}, 'Issue level'), h('dd', {}, words(ticketThen.issue_level)),
        h('dt', {}, 'Support team'), h('dd', {}, words(ticketThen.support_role)),
        h('dt', {}, 'Customer'), h('dd', {}, `${ticketThen.user_id} (${words(ticketThen.user_role)})`),
        h('dt', {}, 'Last change'), h('dd', {}, when(ticketThen.updated_at)),
      ),
      h('h4', {}, `Messages then (${page.data.length}${next ? '+' : ''})`),
      more,
      page.data.length ? list : h('p', { class: 'empty' }, 'No messages yet at this point.'),
    );
  }

  slider.addEventListener('input', () => select(Number(slider.value) - 1, false));
  select(events.length - 1, true);
}
