// parley web client: no framework, no build step, no other host. An ES
// module: dom.js builds elements from user text, commands.js reads what is
// typed, this file holds the state, the connection and the page's wiring.
//
// Rules this file keeps:
//   - user text reaches the page only through textContent / text nodes
//     (append(string)); never an HTML parser. Only http(s) URLs become links.
//   - one WebSocket at a time (state.ws); every event goes through onEvent.
//   - per room, messages are shown once, in id order: a message whose id is
//     <= the last id seen is dropped; older pages are merged by id.
//   - sends are queued in state.outbox until acked and resent with the same
//     ref after a reconnect (the server stores a repeated ref once).
import { parseInput, HELP, NAME_RE } from './commands.js';
import { fold, textEl, nickClass, messageEl, noticeEl } from './dom.js';

const SUBPROTOCOL = 'parley.v1';
const PAGE_SIZE = 100;          // messages per history page
const BACKOFF_MIN_MS = 500;     // first retry delay
const BACKOFF_MAX_MS = 15000;   // cap of the retry delay
const STABLE_MS = 10000;        // a connection up this long resets the backoff
const RETRY_SEND_MS = 1500;     // resend after rate_limited / not_stored
const HANDSHAKE_MS = 10000;     // give up on a connection not welcomed by then
const OLDER_RETRY_MS = 5000;    // wait after a failed page of older messages
const FILL_DELAY_MS = 200;      // quiet time before filling a short view
const DEFAULT_MAX_BYTES = 8192; // frame limit until welcome says otherwise
const LS_NICK = 'parley.nick';
const LS_ROOMS = 'parley.rooms';
const LS_CURRENT = 'parley.current';

const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'), log: $('log'), roomList: $('room-list'), memberList: $('member-list'),
  memberCount: $('member-count'), roomTitle: $('room-title'), conn: $('conn'),
  connText: $('conn-text'), retry: $('retry'), myNick: $('my-nick'), nickBtn: $('nick-btn'),
  input: $('input'), composer: $('composer'), newMarker: $('new-marker'),
  joinForm: $('join-form'), joinInput: $('join-input'), totalUnread: $('total-unread'),
  toggleRooms: $('toggle-rooms'), toggleMembers: $('toggle-members'),
  roomsPanel: $('rooms-panel'), membersPanel: $('members-panel'), scrim: $('scrim'),
  nickDialog: $('nick-dialog'), nickForm: $('nick-form'), nickInput: $('nick-input'),
  nickError: $('nick-error'), nickCancel: $('nick-cancel'),
};

const encoder = new TextEncoder();
const byteLen = (s) => encoder.encode(s).length;

const store = {
  get(k) { try { return localStorage.getItem(k); } catch { return null; } },
  set(k, v) { try { localStorage.setItem(k, v); } catch { /* private mode: not remembered */ } },
};

function randomTag() {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const state = {
  nick: '',            // the nick we ask for (remembered)
  serverNick: '',      // the nick the server gave us on this connection
  ws: null,            // the current WebSocket, or null
  online: false,       // welcome received on state.ws
  epoch: '',           // from the last welcome
  maxBytes: DEFAULT_MAX_BYTES,
  attempt: 0,          // failed connects since the last stable connection
  connectedAt: 0,
  retryTimer: 0,
  retryAt: 0,
  handshakeTimer: 0,
  countdown: 0,
  refTag: randomTag(),
  refSeq: 0,
  requests: new Map(), // ref -> {onAck, onError} for commands on this connection
  outbox: [],          // unacked sends, oldest first: {ref, room, text, action, el, timer}
  rooms: new Map(),    // fold(name) -> room, in join order
  current: '',         // fold(name) of the room shown
};

// refreshConn redraws the connection state (with the queued count) at once;
// connect and scheduleReconnect point it at their own drawing.
let refreshConn = () => {};

const nextRef = () => `w${state.refTag}-${++state.refSeq}`;

// ---------- rooms ----------

function newRoom(name) {
  const key = fold(name);
  const log = document.createElement('div');
  log.className = 'room-log';
  log.dataset.room = key;
  log.setAttribute('role', 'log');
  log.setAttribute('aria-label', `Messages in #${name}`);
  log.tabIndex = 0;
  log.hidden = true;
  const top = document.createElement('div');
  top.className = 'history-top';
  const pendingBox = document.createElement('div');
  pendingBox.className = 'pending-box';
  log.append(top, pendingBox);
  ui.log.append(log);

  const r = {
    name, key, log, top, pendingBox,
    lastId: 0,          // highest message id shown
    oldestId: 0,        // lowest message id shown
    epoch: '',          // epoch lastId belongs to
    ids: new Set(),     // ids shown
    more: true,         // older messages may exist
    loading: false,
    olderError: '',     // why the last page of older messages failed
    olderFailedAt: 0,
    gen: 0,             // bumped by a reset: pages loaded before it are stale
    fillTimer: 0,
    joined: false,      // joined on the current connection
    synced: false,      // joined once: a later join is a resume
    rejoin: false,      // the current join resumes an earlier one
    unread: 0,
    firstUnread: null,  // element of the first unread message
    atBottom: true,
    lastScrollTop: 0,
    divider: null,
    members: new Map(), // fold(nick) -> nick
    pendingById: new Map(), // acked id -> pending element
  };
  log.addEventListener('scroll', () => onScroll(r), { passive: true });
  renderTop(r);
  return r;
}

function ensureRoom(name) {
  let r = state.rooms.get(fold(name));
  if (!r) {
    r = newRoom(name);
    state.rooms.set(r.key, r);
    saveRooms();
  }
  return r;
}

function saveRooms() {
  store.set(LS_ROOMS, JSON.stringify(Array.from(state.rooms.values(), (r) => r.name)));
  if (state.current) store.set(LS_CURRENT, state.current);
}

const currentRoom = () => state.rooms.get(state.current) || null;

function switchRoom(key) {
  const r = state.rooms.get(key);
  if (!r) return;
  const old = currentRoom();
  if (old && old !== r) {
    old.log.hidden = true;
    if (old.divider) { old.divider.remove(); old.divider = null; }
  }
  state.current = key;
  r.log.hidden = false;
  if (r.unread > 0 && r.firstUnread && r.firstUnread.isConnected) placeDivider(r, r.firstUnread);
  r.unread = 0;
  r.firstUnread = null;
  if (r.atBottom) scrollToBottom(r);
  ui.roomTitle.textContent = `#${r.name}`;
  ui.input.placeholder = `Message #${r.name}`;
  saveRooms();
  renderRooms();
  renderMembers();
  updateNewMarker();
  closePanels();
  fillIfShort(r);
}

function removeRoom(r) {
  clearTimeout(r.fillTimer);
  state.rooms.delete(r.key);
  r.log.remove();
  state.outbox = state.outbox.filter((it) => {
    if (fold(it.room) !== r.key) return true;
    clearTimeout(it.timer);
    return false;
  });
  if (state.current === r.key) {
    state.current = '';
    const rest = Array.from(state.rooms.keys());
    if (rest.length) switchRoom(rest[rest.length - 1]);
    else showEmpty();
  }
  saveRooms();
  renderRooms();
}

function showEmpty() {
  ui.roomTitle.textContent = 'no room';
  ui.input.placeholder = 'Join a room with /join ROOM';
  renderMembers();
  updateNewMarker();
}

// ---------- rendering ----------

function renderTop(r) {
  // A keyboard user who pressed "load older messages" keeps the focus.
  const hadFocus = r.top.contains(document.activeElement);
  fillTop(r);
  if (hadFocus) (r.top.querySelector('button') || r.log).focus({ preventScroll: true });
}

function fillTop(r) {
  r.top.replaceChildren();
  if (r.loading) {
    r.top.append(textEl('span', 'loading older messages…', 'muted'));
  } else if (r.olderError) {
    r.top.append(textEl('span', `could not load older messages (${r.olderError})`, 'error-text'));
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link-btn';
    b.textContent = 'try again';
    b.addEventListener('click', () => { r.olderFailedAt = 0; loadOlder(r); });
    r.top.append(b);
  } else if (!r.more) {
    r.top.append(textEl('span', `This is the beginning of #${r.name}.`, 'muted'));
  } else if (r.oldestId) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link-btn';
    b.textContent = 'load older messages';
    b.addEventListener('click', () => loadOlder(r));
    r.top.append(b);
  }
}

function renderRooms() {
  const items = [];
  let total = 0;
  for (const r of state.rooms.values()) {
    total += r.unread;
    const li = document.createElement('li');
    li.className = r.key === state.current ? 'room current' : 'room';
    li.dataset.room = r.key;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'room-btn';
    if (r.key === state.current) b.setAttribute('aria-current', 'page');
    b.append(textEl('span', `#${r.name}`, 'room-name'));
    if (r.unread > 0) {
      const badge = textEl('span', String(r.unread), 'badge');
      badge.title = `${r.unread} unread`;
      b.append(badge);
    }
    b.addEventListener('click', () => { switchRoom(r.key); ui.input.focus(); });
    const x = document.createElement('button');
    x.type = 'button';
    x.className = 'leave-btn';
    x.title = `Leave #${r.name}`;
    x.setAttribute('aria-label', `Leave #${r.name}`);
    x.textContent = '×';
    x.addEventListener('click', () => leaveRoom(r.name));
    li.append(b, x);
    items.push(li);
  }
  ui.roomList.replaceChildren(...items);
  ui.totalUnread.hidden = total === 0;
  ui.totalUnread.textContent = String(total);
  document.title = total > 0 ? `(${total}) parley` : 'parley';
}

function renderMembers() {
  const r = currentRoom();
  const names = r ? Array.from(r.members.values()).sort((a, b) => fold(a) < fold(b) ? -1 : 1) : [];
  ui.memberCount.textContent = names.length ? `(${names.length})` : '';
  ui.memberList.replaceChildren(...names.map((n) => {
    const li = textEl('li', n, `member ${nickClass(n)}`);
    if (fold(n) === fold(state.serverNick)) {
      li.classList.add('me');
      li.append(textEl('span', ' (you)', 'muted'));
    }
    return li;
  }));
}

function renderNick() {
  ui.myNick.textContent = state.serverNick || state.nick || 'pick a nick';
}

// ---------- scrolling ----------

const nearBottom = (log) => log.scrollHeight - log.scrollTop - log.clientHeight < 40;

function scrollToBottom(r) {
  r.log.scrollTop = r.log.scrollHeight;
  r.atBottom = true;
}

function onScroll(r) {
  if (r.log.hidden) return;
  const top = r.log.scrollTop;
  const up = top < r.lastScrollTop;
  r.lastScrollTop = top;
  r.atBottom = nearBottom(r.log);
  if (r.atBottom) updateNewMarker();
  // Only the reader going up loads older pages: the page's own scrolling
  // to the bottom while a short room fills is not a request for more.
  if (up && top < 120) loadOlder(r);
}

function placeDivider(r, before) {
  if (r.divider) r.divider.remove();
  r.divider = textEl('div', 'new messages', 'new-divider');
  r.divider.setAttribute('role', 'separator');
  before.before(r.divider);
}

function updateNewMarker() {
  const r = currentRoom();
  ui.newMarker.hidden = !r || r.atBottom || !r.divider;
}

// insertMessage shows m in r at its place by id; false if already shown.
function insertMessage(r, m) {
  if (r.ids.has(m.id)) return null;
  const el = messageEl(m);
  r.ids.add(m.id);
  if (!r.oldestId || m.id < r.oldestId) r.oldestId = m.id;
  r.pendingBox.before(el);
  const pending = r.pendingById.get(m.id);
  if (pending) { pending.remove(); r.pendingById.delete(m.id); }
  return el;
}

// appendLive adds an element at the bottom and keeps the view where the
// reader is: at the bottom if they were, else where it was, with a marker.
function appendLive(r, el, isNew) {
  const wasBottom = r.atBottom;
  if (!el.isConnected) r.pendingBox.before(el);
  if (r.key !== state.current) {
    if (isNew) {
      if (r.unread === 0) r.firstUnread = el;
      r.unread++;
      renderRooms();
    }
    return;
  }
  if (wasBottom) {
    scrollToBottom(r);
  } else if (isNew) {
    // The first message the reader has not seen gets the divider; the
    // marker stays until they scroll down to it.
    if (ui.newMarker.hidden) placeDivider(r, el);
    updateNewMarker();
  }
  // Once a burst (the history of a join) has settled, fill the view.
  clearTimeout(r.fillTimer);
  r.fillTimer = setTimeout(() => fillIfShort(r), FILL_DELAY_MS);
}

// fillIfShort loads older pages while the room does not fill its view,
// since a view with no scroll bar cannot be scrolled to the top.
function fillIfShort(r) {
  if (r.key !== state.current || r.loading || !r.more || !r.oldestId) return;
  if (r.log.scrollHeight <= r.log.clientHeight + 8) loadOlder(r);
}

async function loadOlder(r) {
  if (r.loading || !r.more || !r.oldestId) return;
  // After a failure, scrolling at the top does not retry at once.
  if (Date.now() - r.olderFailedAt < OLDER_RETRY_MS) return;
  r.loading = true;
  renderTop(r);
  const before = r.oldestId;
  const gen = r.gen;
  const q = new URLSearchParams({ before: String(before), limit: String(PAGE_SIZE) });
  let ok = false;
  try {
    const res = await fetch(`/api/rooms/${encodeURIComponent(r.name)}/messages?${q}`,
      { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    if (state.rooms.get(r.key) !== r || r.gen !== gen) return; // left or reset meanwhile
    const msgs = (Array.isArray(body.messages) ? body.messages : [])
      .filter((m) => typeof m.id === 'number' && m.id < before && !r.ids.has(m.id))
      .sort((a, b) => a.id - b.id);
    const log = r.log;
    const oldHeight = log.scrollHeight;
    const oldTop = log.scrollTop;
    const frag = document.createDocumentFragment();
    for (const m of msgs) {
      r.ids.add(m.id);
      frag.append(messageEl(m));
    }
    r.top.after(frag);
    if (msgs.length) r.oldestId = msgs[0].id;
    r.more = Boolean(body.more) && msgs.length > 0;
    r.loading = false;
    r.olderError = '';
    renderTop(r);
    // Keep the messages the reader was looking at where they were.
    log.scrollTop = oldTop + (log.scrollHeight - oldHeight);
    ok = true;
  } catch (err) {
    r.olderError = err.message || String(err);
    r.olderFailedAt = Date.now();
  } finally {
    r.loading = false;
    if (state.rooms.get(r.key) === r) renderTop(r);
  }
  if (ok) fillIfShort(r);
}

// ---------- the connection ----------

function setConn(s, text, title) {
  const queued = s !== 'online' && state.outbox.length ? ` · ${state.outbox.length} queued` : '';
  ui.conn.dataset.state = s;
  ui.connText.textContent = text + queued;
  ui.conn.title = title || '';
  ui.retry.hidden = s !== 'offline';
  ui.app.dataset.conn = s;
}

function connect() {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdown);
  state.retryTimer = 0;
  if (state.ws || !state.nick) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}/ws?nick=${encodeURIComponent(state.nick)}`;
  refreshConn = () => setConn('connecting', 'connecting…');
  refreshConn();
  let ws;
  try {
    ws = new WebSocket(url, SUBPROTOCOL);
  } catch (err) {
    scheduleReconnect(String(err));
    return;
  }
  state.ws = ws;
  // A handshake that hangs (a half-open network) is given up on, so the
  // backoff goes on.
  clearTimeout(state.handshakeTimer);
  state.handshakeTimer = setTimeout(() => {
    if (ws === state.ws && !state.online) ws.close();
  }, HANDSHAKE_MS);
  ws.onmessage = (e) => {
    if (ws !== state.ws) return;
    let ev;
    try { ev = JSON.parse(e.data); } catch { return; }
    if (ev && typeof ev === 'object') onEvent(ev);
  };
  ws.onclose = (e) => {
    if (ws !== state.ws) return;
    onClosed(e.code, e.reason);
  };
}

function onClosed(code, reason) {
  clearTimeout(state.handshakeTimer);
  state.ws = null;
  state.online = false;
  state.requests.clear();
  for (const r of state.rooms.values()) r.joined = false;
  for (const it of state.outbox) { clearTimeout(it.timer); it.timer = 0; it.sent = false; }
  if (state.connectedAt && Date.now() - state.connectedAt >= STABLE_MS) state.attempt = 0;
  state.connectedAt = 0;
  const why = reason ? `${code} ${reason}` : `code ${code}`;
  scheduleReconnect(why);
}

function scheduleReconnect(why) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
  const delay = cap / 2 + Math.random() * cap / 2; // jitter in [cap/2, cap)
  state.attempt++;
  state.retryAt = Date.now() + delay;
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(connect, delay);
  const tick = () => {
    const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    setConn('offline', `offline — retrying in ${s}s`, `connection closed (${why})`);
  };
  clearInterval(state.countdown);
  tick();
  state.countdown = setInterval(tick, 1000);
  refreshConn = tick;
}

function retryNow() {
  if (state.ws || !state.nick) return;
  state.attempt = 0;
  connect();
}

function sendFrame(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(JSON.stringify(obj));
  return true;
}

// request sends a command with a ref and calls back on its ack or error.
function request(cmd, onAck, onError) {
  cmd.ref = nextRef();
  state.requests.set(cmd.ref, { onAck, onError });
  if (!sendFrame(cmd)) state.requests.delete(cmd.ref);
}

// ---------- events ----------

function onEvent(ev) {
  switch (ev.type) {
    case 'welcome': return onWelcome(ev);
    case 'ack': return onAck(ev);
    case 'error': return onError(ev);
    case 'message': return onMessage(ev);
    case 'join': return onJoin(ev);
    case 'leave': return onLeave(ev);
    case 'nick': return onNick(ev);
    case 'who': return onWho(ev);
    case 'rooms': return onRooms(ev);
    case 'history': return onHistory(ev);
    case 'gap': return onGap(ev);
    case 'reset': return onReset(ev);
    default: return undefined; // servers may add types
  }
}

function onWelcome(ev) {
  clearTimeout(state.handshakeTimer);
  state.online = true;
  state.connectedAt = Date.now();
  clearInterval(state.countdown);
  state.serverNick = ev.nick || state.nick;
  state.epoch = ev.epoch || '';
  if (ev.limits && ev.limits.max_message_bytes > 0) state.maxBytes = ev.limits.max_message_bytes;
  setConn('online', 'connected', `connected to ${ev.node || ev.server || 'parley'} as ${state.serverNick}`);
  renderNick();
  // Join (or resume) every room, then resend what was not acked: the
  // server handles commands of one connection in order.
  for (const r of state.rooms.values()) joinOnServer(r);
  for (const it of state.outbox) transmit(it);
  renderMembers();
}

function joinOnServer(r) {
  const cmd = { type: 'join', room: r.name };
  r.rejoin = r.synced;
  if (r.lastId > 0) {
    cmd.since = r.lastId;
    if (r.epoch) cmd.epoch = r.epoch;
  }
  const epoch = state.epoch;
  request(cmd, () => {
    r.joined = true;
    r.synced = true;
    if (!r.epoch || !cmd.since) r.epoch = epoch;
    request({ type: 'who', room: r.name });
  }, (e) => {
    appendLive(r, noticeEl(`! cannot join #${r.name}: ${e.message || e.code}`, 'error'), false);
    if (e.code === 'bad_room' || e.code === 'too_many_rooms') removeRoom(r);
  });
}

function onAck(ev) {
  const it = state.outbox.find((x) => x.ref === ev.ref);
  if (it) {
    state.outbox = state.outbox.filter((x) => x !== it);
    clearTimeout(it.timer);
    const r = state.rooms.get(fold(it.room));
    if (r && it.el) {
      if (r.ids.has(ev.id)) it.el.remove();
      else { it.el.classList.add('sent'); r.pendingById.set(ev.id, it.el); }
    }
    return;
  }
  const req = state.requests.get(ev.ref);
  if (req) {
    state.requests.delete(ev.ref);
    if (req.onAck) req.onAck(ev);
  }
}

function onError(ev) {
  const text = `! error: ${ev.message || ev.code}`;
  if (ev.ref) {
    const it = state.outbox.find((x) => x.ref === ev.ref);
    if (it) return onSendError(it, ev);
    const req = state.requests.get(ev.ref);
    if (req) {
      state.requests.delete(ev.ref);
      if (req.onError) return req.onError(ev);
    }
  }
  const r = (ev.room && state.rooms.get(fold(ev.room))) || currentRoom();
  if (r) appendLive(r, noticeEl(text, 'error'), false);
}

function onSendError(it, ev) {
  const r = state.rooms.get(fold(it.room));
  if (ev.code === 'rate_limited' || ev.code === 'not_stored') {
    // Not sent: try again with the same ref.
    it.sent = false;
    clearTimeout(it.timer);
    it.timer = setTimeout(() => { it.timer = 0; transmit(it); }, RETRY_SEND_MS);
    if (it.el) it.el.title = ev.message || ev.code;
    return;
  }
  state.outbox = state.outbox.filter((x) => x !== it);
  if (it.el) { it.el.classList.add('failed'); it.el.title = ev.message || ev.code; }
  if (r) appendLive(r, noticeEl(`! not sent: ${ev.message || ev.code}`, 'error'), false);
}

function onMessage(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (!r || typeof ev.id !== 'number') return;
  if (ev.id <= r.lastId) return; // already seen: nothing twice
  r.lastId = ev.id;
  const el = insertMessage(r, ev);
  if (!el) return;
  // A replay on first join is context, not news; a replay on resume is
  // what the reader missed.
  appendLive(r, el, !ev.history || r.rejoin);
}

function isMe(nick) { return fold(nick || '') === fold(state.serverNick || ''); }

function onJoin(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (!r) return;
  r.members.set(fold(ev.nick), ev.nick);
  if (r.key === state.current) renderMembers();
  if (isMe(ev.nick) && r.rejoin) return; // a resume, not news
  appendLive(r, noticeEl(`* ${isMe(ev.nick) ? 'you' : ev.nick} joined #${r.name}`, 'presence'), false);
}

function onLeave(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (!r) return;
  r.members.delete(fold(ev.nick));
  if (r.key === state.current) renderMembers();
  appendLive(r, noticeEl(`* ${ev.nick} left #${r.name}`, 'presence'), false);
}

function onNick(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (isMe(ev.old)) {
    state.serverNick = ev.nick;
    renderNick();
  }
  if (!r) return;
  r.members.delete(fold(ev.old));
  r.members.set(fold(ev.nick), ev.nick);
  if (r.key === state.current) renderMembers();
  appendLive(r, noticeEl(`* ${ev.old} is now known as ${ev.nick}`, 'presence'), false);
}

function onWho(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  const members = Array.isArray(ev.members) ? ev.members : [];
  if (r) {
    r.members = new Map(members.map((n) => [fold(n), n]));
    if (r.key === state.current) renderMembers();
  }
  const req = ev.ref && state.requests.get(ev.ref);
  if (req) { state.requests.delete(ev.ref); if (req.onAck) req.onAck(ev); }
}

function onRooms(ev) {
  const req = ev.ref && state.requests.get(ev.ref);
  if (req) { state.requests.delete(ev.ref); if (req.onAck) req.onAck(ev); }
}

function onHistory(ev) {
  const req = ev.ref && state.requests.get(ev.ref);
  if (req) { state.requests.delete(ev.ref); if (req.onAck) req.onAck(ev); }
}

function onGap(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (!r) return;
  appendLive(r, noticeEl(`! gap: messages ${ev.first}-${ev.last} of #${r.name} are no longer in the history`, 'error'), false);
}

function onReset(ev) {
  const r = state.rooms.get(fold(ev.room || ''));
  if (!r) return;
  // Ids of the old epoch mean nothing now: start the room over.
  for (const e of r.log.querySelectorAll('.msg[data-id], .new-divider')) e.remove();
  r.ids.clear();
  r.lastId = 0;
  r.oldestId = 0;
  r.more = true;
  r.rejoin = false;
  r.divider = null;
  r.epoch = ev.epoch || '';
  for (const el of r.pendingById.values()) el.remove(); // stored in the old log
  r.pendingById.clear();
  r.gen++;
  r.olderError = '';
  renderTop(r);
  appendLive(r, noticeEl(`! reset: the history of #${r.name} was reset; the latest messages follow`, 'error'), false);
}

// ---------- sending ----------

function queueSend(r, text, action) {
  const it = { ref: nextRef(), room: r.name, text, action, el: null, timer: 0, sent: false };
  if (byteLen(JSON.stringify({ type: 'send', room: it.room, text, action, ref: it.ref })) > state.maxBytes) {
    appendLive(r, noticeEl(`! not sent: the message is over ${state.maxBytes} bytes`, 'error'), false);
    return false;
  }
  const el = messageEl({ from: state.serverNick || state.nick, text, action });
  el.classList.add('pending');
  el.title = 'sending…';
  it.el = el;
  r.pendingBox.append(el);
  if (r.key === state.current) scrollToBottom(r);
  state.outbox.push(it);
  transmit(it);
  if (!state.online) refreshConn();
  return true;
}

function transmit(it) {
  if (!state.online || it.timer) return;
  const cmd = { type: 'send', room: it.room, text: it.text, ref: it.ref };
  if (it.action) cmd.action = true;
  if (byteLen(JSON.stringify(cmd)) > state.maxBytes) {
    onSendError(it, { code: 'too_long', message: `the message is over ${state.maxBytes} bytes` });
    return;
  }
  it.sent = sendFrame(cmd);
}

// ---------- commands typed into the input ----------

function say(text, kind) {
  const r = currentRoom();
  if (r) appendLive(r, noticeEl(text, kind), false);
}

function needOnline() {
  if (state.online) return true;
  say('! not connected; try again when the connection is back', 'error');
  return false;
}

function runInput(raw) {
  const c = parseInput(raw);
  const r = currentRoom();
  switch (c.kind) {
    case 'empty':
      return true;
    case 'error':
      say(c.message, 'error');
      return false; // the line stays in the input, to be fixed
    case 'say': case 'me':
      if (!r) { say('! join a room first: /join ROOM', 'error'); return false; }
      return queueSend(r, c.text, c.kind === 'me');
    case 'nick':
      changeNick(c.nick, null);
      return true;
    case 'join':
      joinRoom(c.room);
      return true;
    case 'leave': {
      const name = c.room || (r && r.name);
      if (!name) { say('! not in a room', 'error'); return false; }
      leaveRoom(name);
      return true;
    }
    case 'who': {
      const name = c.room || (r && r.name);
      if (!name) { say('! usage: /who ROOM', 'error'); return false; }
      if (!needOnline()) return false;
      request({ type: 'who', room: name }, (ev) => {
        const ms = ev.members || [];
        say(`* in #${ev.room || name} (${ms.length}): ${ms.join(', ')}`, 'info');
      }, (e) => say(`! error: ${e.message || e.code}`, 'error'));
      return true;
    }
    case 'rooms':
      if (!needOnline()) return false;
      request({ type: 'rooms' }, (ev) => {
        const list = (ev.rooms || []).map((x) => `#${x.name} (${x.members})`);
        say(`* rooms: ${list.length ? list.join(', ') : 'none'}`, 'info');
      }, (e) => say(`! error: ${e.message || e.code}`, 'error'));
      return true;
    case 'help':
      for (const line of HELP) say(line, 'info');
      return true;
    default:
      return false;
  }
}

function joinRoom(name) {
  const existed = state.rooms.has(fold(name));
  const r = ensureRoom(name);
  switchRoom(r.key);
  renderRooms();
  if (!existed && state.online) joinOnServer(r);
}

function leaveRoom(name) {
  const r = state.rooms.get(fold(name));
  if (!r) { say(`! you are not in #${name}`, 'error'); return; }
  if (state.online && r.joined) {
    request({ type: 'leave', room: r.name }, () => removeRoom(r),
      (e) => { if (e.code === 'not_in_room') removeRoom(r); else say(`! error: ${e.message || e.code}`, 'error'); });
  } else {
    removeRoom(r);
  }
}

// changeNick asks the server for a new nick; done(err) is called with the
// error message, or '' once it is ours.
function changeNick(nick, done) {
  if (!state.online) {
    state.nick = nick;
    store.set(LS_NICK, nick);
    renderNick();
    say(`* your nick will be ${nick} when the connection is back`, 'info');
    if (done) done('');
    return;
  }
  request({ type: 'nick', nick }, () => {
    state.nick = nick;
    state.serverNick = nick;
    store.set(LS_NICK, nick);
    renderNick();
    renderMembers();
    if (done) done('');
  }, (e) => {
    const msg = e.message || e.code;
    if (done) done(msg); else say(`! error: ${msg}`, 'error');
  });
}

// ---------- the nick dialog ----------

let dialogReturn = null;

function openNickDialog(first) {
  dialogReturn = document.activeElement;
  ui.nickDialog.hidden = false;
  ui.app.inert = true; // keyboard focus stays in the dialog
  ui.nickCancel.hidden = first;
  ui.nickError.textContent = '';
  ui.nickInput.value = first ? '' : (state.serverNick || state.nick);
  ui.nickInput.focus();
  ui.nickInput.select();
}

function closeNickDialog() {
  ui.nickDialog.hidden = true;
  ui.app.inert = false;
  const back = dialogReturn && dialogReturn !== document.body && dialogReturn.isConnected;
  (back ? dialogReturn : ui.input).focus();
}

ui.nickForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const nick = ui.nickInput.value.trim();
  if (!NAME_RE.test(nick)) {
    ui.nickError.textContent = 'Use 1–32 letters, digits, - or _.';
    return;
  }
  if (!state.nick) { // first visit
    state.nick = nick;
    store.set(LS_NICK, nick);
    renderNick();
    closeNickDialog();
    connect();
    return;
  }
  changeNick(nick, (err) => {
    if (err) ui.nickError.textContent = err;
    else closeNickDialog();
  });
});
ui.nickCancel.addEventListener('click', closeNickDialog);
ui.nickBtn.addEventListener('click', () => openNickDialog(!state.nick));

// ---------- input ----------

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

function submitInput() {
  const raw = ui.input.value;
  if (runInput(raw)) {
    ui.input.value = '';
    autosize();
  }
}

ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    submitInput();
  }
});
ui.input.addEventListener('input', autosize);
ui.composer.addEventListener('submit', (e) => { e.preventDefault(); submitInput(); ui.input.focus(); });

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.joinInput.value.trim().replace(/^#/, '');
  if (!NAME_RE.test(name)) { ui.joinInput.setCustomValidity('1-32 letters, digits, - or _'); ui.joinInput.reportValidity(); return; }
  ui.joinInput.setCustomValidity('');
  ui.joinInput.value = '';
  joinRoom(name);
  ui.input.focus();
});
ui.joinInput.addEventListener('input', () => ui.joinInput.setCustomValidity(''));

ui.newMarker.addEventListener('click', () => {
  const r = currentRoom();
  if (r) scrollToBottom(r);
  updateNewMarker();
  ui.input.focus();
});
ui.retry.addEventListener('click', retryNow);

// ---------- panels (narrow screens) ----------

function setPanel(panel, button, open) {
  panel.classList.toggle('open', open);
  button.setAttribute('aria-expanded', String(open));
}

function closePanels() {
  setPanel(ui.roomsPanel, ui.toggleRooms, false);
  setPanel(ui.membersPanel, ui.toggleMembers, false);
  ui.scrim.hidden = true;
}

function togglePanel(panel, button) {
  const open = !panel.classList.contains('open');
  closePanels();
  setPanel(panel, button, open);
  ui.scrim.hidden = !open;
  if (open) {
    const f = panel.querySelector('button, input');
    if (f) f.focus();
  }
}

ui.toggleRooms.addEventListener('click', () => togglePanel(ui.roomsPanel, ui.toggleRooms));
ui.toggleMembers.addEventListener('click', () => togglePanel(ui.membersPanel, ui.toggleMembers));
ui.scrim.addEventListener('click', closePanels);

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    if (!ui.nickDialog.hidden && !ui.nickCancel.hidden) closeNickDialog();
    else closePanels();
  } else if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
    const keys = Array.from(state.rooms.keys());
    if (keys.length < 2) return;
    e.preventDefault();
    const i = keys.indexOf(state.current);
    switchRoom(keys[(i + (e.key === 'ArrowUp' ? -1 : 1) + keys.length) % keys.length]);
    ui.input.focus();
  }
});

// Come back at once when the network or the tab does.
window.addEventListener('online', retryNow);
document.addEventListener('visibilitychange', () => { if (!document.hidden) retryNow(); });
window.addEventListener('resize', () => {
  const r = currentRoom();
  if (r && r.atBottom) scrollToBottom(r);
});

// ---------- start ----------

function start() {
  let names = [];
  try { names = JSON.parse(store.get(LS_ROOMS) || '[]'); } catch { names = []; }
  names = Array.isArray(names) ? names.filter((n) => typeof n === 'string' && NAME_RE.test(n)) : [];
  if (!names.length) names = ['lobby'];
  for (const n of names) ensureRoom(n);
  const cur = store.get(LS_CURRENT);
  switchRoom(cur && state.rooms.has(cur) ? cur : fold(names[0]));

  const nick = store.get(LS_NICK);
  if (nick && NAME_RE.test(nick)) {
    state.nick = nick;
    renderNick();
    connect();
  } else {
    renderNick();
    setConn('idle', 'not connected');
    openNickDialog(true);
  }
}

start();
