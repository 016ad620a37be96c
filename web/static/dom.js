// Building the page's elements from what users wrote. Every piece of user
// text goes in through textContent or a text node (append(string)); nothing
// here parses HTML. Only http(s) URLs become links.

export const fold = (s) => s.toLowerCase();

export function textEl(tag, text, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  e.textContent = text;
  return e;
}

// nickClass picks one of eight colors for a nick, the same on every page.
export function nickClass(nick) {
  let h = 0;
  for (const c of fold(nick)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `c${h % 8}`;
}

// timeEl shows ts (RFC 3339; now if empty) as the time of day, with the
// date when it is not today, and the full date and time as a tooltip.
export function timeEl(ts) {
  const t = document.createElement('time');
  t.className = 'ts';
  const d = ts ? new Date(ts) : new Date();
  if (Number.isNaN(d.getTime())) return t;
  t.dateTime = d.toISOString();
  t.title = d.toLocaleString();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  t.textContent = d.toDateString() === new Date().toDateString()
    ? hm : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${hm}`;
  return t;
}

// URLs: http(s) only, trailing punctuation left out of the link.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function trimURL(u) {
  for (;;) {
    const c = u[u.length - 1];
    if ('.,;:!?\'"*'.includes(c)) { u = u.slice(0, -1); continue; }
    if (c === ')' && (u.match(/\)/g) || []).length > (u.match(/\(/g) || []).length) { u = u.slice(0, -1); continue; }
    if (c === ']' && (u.match(/]/g) || []).length > (u.match(/\[/g) || []).length) { u = u.slice(0, -1); continue; }
    return u;
  }
}

function safeHref(s) {
  try {
    const u = new URL(s);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
  } catch { /* not a URL */ }
  return '';
}

// appendText puts text into parent as text nodes, with http(s) URLs as links
// that open in a new tab and tell the other site nothing.
export function appendText(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = trimURL(m[0]);
    const href = safeHref(url);
    if (!href) continue;
    if (m.index > last) parent.append(text.slice(last, m.index));
    const a = document.createElement('a');
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = url;
    parent.append(a);
    last = m.index + url.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

// messageEl shows a message event (or a pending send, without id):
// time, nick, text; an action as "* nick text".
export function messageEl(m) {
  const div = document.createElement('div');
  div.className = m.action ? 'msg action' : 'msg';
  if (m.id) div.dataset.id = String(m.id);
  div.dataset.from = m.from || '';
  div.append(timeEl(m.ts));
  const from = document.createElement('span');
  from.className = `from ${nickClass(m.from || '')}`;
  from.textContent = m.action ? `* ${m.from}` : m.from;
  const text = document.createElement('span');
  text.className = 'text';
  appendText(text, m.text || '');
  const body = document.createElement('span');
  body.className = 'body';
  body.append(from, ' ', text);
  div.append(body);
  return div;
}

// noticeEl shows a line that is not a message: presence, errors, answers.
export function noticeEl(text, kind) {
  const div = document.createElement('div');
  div.className = kind ? `notice ${kind}` : 'notice';
  div.append(timeEl(null));
  div.append(textEl('span', text, 'body text'));
  return div;
}
