package benchtest

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestBroadcastDropsEveryNth(t *testing.T) {
	t.Parallel()
	url := StartTextServer(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, s := range []string{"1", "2", "3", "4"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(got) < 3 {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	if want := "1 2 4"; got[0]+" "+got[1]+" "+got[2] != want {
		t.Errorf("echoed %q, want %s: the third frame dropped", got, want)
	}
	c.Close(websocket.StatusNormalClosure, "")
}
