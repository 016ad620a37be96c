// Package tui is parley's interactive terminal client: the full-screen
// `parley chat` on a terminal. Run dials the server with internal/client
// (which reconnects and resumes), and shows the rooms joined with their
// unread counts, the scrollback of the current room with times and a
// stable colour per nick, its members, a status line and an input line with
// history and the text format's /commands.
//
// # Concurrency
//
// The model is owned by Bubble Tea's event loop: only Update changes it,
// and View reads it on the same goroutine. One goroutine, the pump, owned
// and waited for by Run, reads the client's Events and hands them to the
// program in batches. Update never blocks: commands go out with
// client.Post, whose answers come back as events, matched by ref.
//
// # Safety
//
// Everything that comes from the server (messages, nicks, room names,
// error messages) passes through clean before it is drawn, so nobody can
// move the cursor, recolour the screen or set the window title of another
// user's terminal.
package tui
