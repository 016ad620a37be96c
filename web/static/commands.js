// The commands a user types into the input, as in the terminal client and
// the text format (docs/protocol.md): parseInput says what a line asks for;
// app.js does it with JSON commands.

export const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;

export const HELP = [
  'commands:',
  '/nick NAME: change your nick',
  '/join ROOM: join ROOM and switch to it',
  '/leave [ROOM]: leave ROOM (default: this room)',
  '/who [ROOM]: list the members of ROOM (default: this room)',
  '/rooms: list rooms with members',
  '/me ACTION: send an action',
  '/help: this list',
  'start a message with // to send text that begins with /',
  'Enter sends, Shift+Enter inserts a new line; Alt+Up/Down switches rooms',
];

const NAME_RULE = '1-32 letters, digits, - or _';

function roomArg(arg) {
  const name = arg.split(/\s+/)[0].replace(/^#/, '');
  return NAME_RE.test(name) ? { name } : { error: `! "${arg}" is not a room name (${NAME_RULE})` };
}

// parseInput turns one line into {kind, ...}:
//   empty; say {text}; me {text}; nick {nick}; join {room}; leave {room};
//   who {room}; rooms; help; error {message}.
// A missing optional room is ''. "//x" says "/x".
export function parseInput(raw) {
  if (raw.trim() === '') return { kind: 'empty' };
  if (!raw.startsWith('/')) return { kind: 'say', text: raw };
  if (raw.startsWith('//')) return { kind: 'say', text: raw.slice(1) };
  const m = raw.match(/^\/(\S*)\s*([\s\S]*)$/);
  const arg = m[2].trim();
  switch (m[1].toLowerCase()) {
    case 'nick':
      return NAME_RE.test(arg) ? { kind: 'nick', nick: arg }
        : { kind: 'error', message: `! usage: /nick NAME (${NAME_RULE})` };
    case 'join': {
      if (!arg) return { kind: 'error', message: '! usage: /join ROOM' };
      const r = roomArg(arg);
      return r.error ? { kind: 'error', message: r.error } : { kind: 'join', room: r.name };
    }
    case 'leave': case 'part': case 'who': {
      const kind = m[1].toLowerCase() === 'who' ? 'who' : 'leave';
      if (!arg) return { kind, room: '' };
      const r = roomArg(arg);
      return r.error ? { kind: 'error', message: r.error } : { kind, room: r.name };
    }
    case 'rooms':
      return { kind: 'rooms' };
    case 'me':
      return arg ? { kind: 'me', text: arg } : { kind: 'error', message: '! usage: /me ACTION' };
    case 'help':
      return { kind: 'help' };
    default:
      return { kind: 'error', message: `! unknown command /${m[1]} (type /help for the list)` };
  }
}
