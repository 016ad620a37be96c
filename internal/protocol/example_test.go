package protocol_test

import (
	"fmt"
	"time"

	"parley/internal/protocol"
)

func ExampleDecodeJSON() {
	cmd, err := protocol.DecodeJSON([]byte(`{"type":"send","room":"lobby","text":"hi","ref":"c1"}`))
	fmt.Println(cmd.Type, cmd.Room, cmd.Text, cmd.Ref, err == nil)

	_, err = protocol.DecodeJSON([]byte(`{"type":"join","room":"no way","ref":"c2"}`))
	fmt.Println(err.Code, err.Ref)
	// Output:
	// send lobby hi c1 true
	// bad_room c2
}

func ExampleDecodeText() {
	for _, line := range []string{"hi there\r\n", "//join is a word", "/join #dev", "/me waves", "/dance"} {
		cmd, err := protocol.DecodeText(line)
		if err != nil {
			fmt.Printf("%s: %s\n", err.Code, err.Message)
			continue
		}
		fmt.Printf("%s room=%q text=%q action=%v\n", cmd.Type, cmd.Room, cmd.Text, cmd.Action)
	}
	// Output:
	// send room="" text="hi there" action=false
	// send room="" text="/join is a word" action=false
	// join room="dev" text="" action=false
	// send room="" text="waves" action=true
	// unknown_command: unknown command /dance (type /help for the list)
}

func ExampleAppendJSON() {
	ev := protocol.Event{
		Type: protocol.EvMessage, Room: "lobby", ID: 7, From: "alice", Text: `say "hi"`,
		TS: time.Date(2026, 11, 25, 19, 40, 9, 123_456_789, time.UTC),
	}
	var buf []byte
	buf = protocol.AppendJSON(buf[:0], &ev)
	fmt.Println(string(buf))
	// Output:
	// {"type":"message","room":"lobby","id":7,"from":"alice","text":"say \"hi\"","ts":"2026-11-25T19:40:09.123Z"}
}

func ExampleAppendText() {
	ev := protocol.Event{Type: protocol.EvMessage, Room: "dev", From: "bob", Text: "waves", Action: true, History: true}
	fmt.Println(string(protocol.AppendText(nil, &ev, "lobby")))
	ev.Room = "lobby"
	fmt.Println(string(protocol.AppendText(nil, &ev, "lobby")))
	// Output:
	// [history] #dev * bob waves
	// [history] * bob waves
}
