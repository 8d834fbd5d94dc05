// Small DOM helpers. Every piece of text that came from a user or the server goes into the page
// through text nodes (`textContent`), never as HTML.

/**
 * Makes an element: `h('button', {class: 'x', onclick: f}, 'Label', child)`. Attributes whose
 * value is false, null or undefined are left out; `on…` keys add listeners; strings and numbers
 * among the children become text nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'text') {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Removes every child. */
export function clear(el) {
  el.replaceChildren();
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

/** A readable local date and time for epoch milliseconds. */
export function when(ms) {
  return dateTime.format(new Date(ms));
}

/** A `<time>` element: short on screen, the full date in its title and datetime. */
export function timeEl(ms, short = true) {
  const date = new Date(ms);
  return h('time', { datetime: date.toISOString(), title: dateTime.format(date) }, short ? shortWhen(ms) : dateTime.format(date));
}

function shortWhen(ms) {
  const date = new Date(ms);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

/** Words for the vocabularies: "URGENT" → "Urgent", "TEMP_USER" → "Temp user". */
export function words(value) {
  const text = String(value || '').toLowerCase().replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Only absolute http(s) links become anchors; anything else stays text. */
export function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * One message as a list item. `who` says how to label the author ('customer' or 'staff'), `mine`
 * whether the viewer wrote it; `actions` is an optional element of buttons.
 */
export function messageItem(m, { who, mine, actions = null }) {
  const classes = ['msg', `from-${who}`];
  if (mine) classes.push('mine');
  if (m.internal) classes.push('internal');
  const edited = m.updated_at > m.created_at;
  const attachments = (m.attachments || []).map((link) => {
    const href = safeUrl(link);
    return h('li', {}, href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, link) : link);
  });
  return h(
    'li',
    { class: classes.join(' '), 'data-id': m.id },
    h(
      'div',
      { class: 'msg-head' },
      h('span', { class: 'author' }, m.author_name, mine ? ' (you)' : ''),
      m.internal ? h('span', { class: 'tag internal-tag' }, 'Internal note · staff only') : null,
      timeEl(m.created_at),
      edited ? h('span', { class: 'edited', title: `Edited ${when(m.updated_at)}` }, 'edited') : null,
    ),
    h('p', { class: 'msg-body' }, m.content),
    attachments.length ? h('ul', { class: 'attachments', 'aria-label': 'Attachments' }, attachments) : null,
    actions,
  );
}
