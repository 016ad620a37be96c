package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run measured. Durations are in the unit their name
// says; JSON field names are stable (scripts parse them).
type Result struct {
	Mode   string  `json:"mode"` // "fanout" or "idle"
	URL    string  `json:"url"`
	Format string  `json:"format"` // "json" or "text"
	Subs   int     `json:"subs,omitempty"`
	Pubs   int     `json:"pubs,omitempty"`
	Rooms  int     `json:"rooms,omitempty"`
	Size   int     `json:"size,omitempty"`
	Rate   float64 `json:"rate"`             // requested messages/s; 0: as fast as delivery allows
	Window int     `json:"window,omitempty"` // per publisher, at rate 0
	Idle   int     `json:"idle,omitempty"`

	// Fan-out: Sent messages over SendSeconds; Delivered (distinct
	// messages received by subscribers) over Seconds, from the first send
	// to the last delivery.
	Sent            int64   `json:"sent"`
	SendSeconds     float64 `json:"send_seconds"`
	SentPerSec      float64 `json:"sent_per_sec"`
	Delivered       int64   `json:"delivered"`
	Seconds         float64 `json:"seconds"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`

	// The promise: Expected is every message sent times the subscribers
	// of its room; Lost is what of it never arrived.
	Expected     int64 `json:"expected"`
	Lost         int64 `json:"lost"`
	Duplicates   int64 `json:"duplicates"`
	OutOfOrder   int64 `json:"out_of_order"`
	Foreign      int64 `json:"foreign"`      // messages from another room's publisher
	Disconnected int   `json:"disconnected"` // subscriber and publisher connections the server or network ended
	// Resynced counts deliveries the server replayed from its log
	// ("history":true) after a subscriber's queue overflowed: not a
	// failure, but a sign the load exceeded what clients read.
	Resynced int64 `json:"resynced"`
	// Stalls counts times a publisher gave up waiting for its window.
	Stalls int64 `json:"stalls"`

	// ClientCPUSeconds is the CPU time the load generator itself used
	// during the measured interval: it shares the machine with the server.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`

	Latency Latency  `json:"latency_us"`
	Connect Connect  `json:"connect"`
	Server  *Server  `json:"server,omitempty"`
	Held    float64  `json:"held_seconds,omitempty"` // idle: how long connections were held
	Errors  []string `json:"errors,omitempty"`       // the first few distinct errors
	// ErrorCount counts error events or lines from the server and
	// failed connections.
	ErrorCount int  `json:"error_count"`
	OK         bool `json:"ok"` // nothing lost, doubled, reordered, rejected or disconnected
}

// Latency is from the publisher's send to a subscriber's receipt, in µs.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Connect is how long connecting took: every connection (Seconds), and
// each one's dial and handshake (in ms).
type Connect struct {
	Conns   int     `json:"conns"`
	Seconds float64 `json:"seconds"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	// BenchCPUSeconds is the load generator's own CPU time while it
	// connected, and ServerCPUSeconds the server's (with ServerPID): on
	// one machine the two share the cores, so both bound the connect time.
	BenchCPUSeconds  float64 `json:"bench_cpu_seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
}

// Server is what /proc says about the server process during the run.
type Server struct {
	PID int `json:"pid"`
	// CPUSeconds is utime+stime used during the measured interval (from
	// the first send until the last delivery or the drain timeout; for
	// idle runs, while the connections were held).
	CPUSeconds float64 `json:"cpu_seconds"`
	// DeliveriesPerCPUSecond and CPUMicrosPerDelivery relate CPUSeconds
	// to Delivered (fan-out only).
	DeliveriesPerCPUSecond float64 `json:"deliveries_per_cpu_second,omitempty"`
	CPUMicrosPerDelivery   float64 `json:"cpu_us_per_delivery,omitempty"`
	RSSBeforeKiB           int64   `json:"rss_before_kib"`
	RSSAfterKiB            int64   `json:"rss_after_kib"`
	// RSSPerConnKiB is (after - before) / connections (idle only).
	RSSPerConnKiB float64 `json:"rss_per_conn_kib,omitempty"`
}

func formatName(text bool) string {
	if text {
		return "text"
	}
	return "json"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencyStats(h *histogram) Latency {
	return Latency{
		P50:  us(h.quantile(0.50)),
		P90:  us(h.quantile(0.90)),
		P99:  us(h.quantile(0.99)),
		P999: us(h.quantile(0.999)),
		Max:  us(time.Duration(h.max)),
	}
}

func connectStats(n int, total time.Duration, h *histogram) Connect {
	return Connect{
		Conns:   n,
		Seconds: total.Seconds(),
		P50ms:   ms(h.quantile(0.50)),
		P99ms:   ms(h.quantile(0.99)),
		MaxMs:   ms(time.Duration(h.max)),
	}
}

func serverStats(pid int, before, after procSample, delivered int64) *Server {
	s := &Server{
		PID:          pid,
		CPUSeconds:   (after.cpu - before.cpu).Seconds(),
		RSSBeforeKiB: before.rssKiB,
		RSSAfterKiB:  after.rssKiB,
	}
	if delivered > 0 && s.CPUSeconds > 0 {
		s.DeliveriesPerCPUSecond = float64(delivered) / s.CPUSeconds
		s.CPUMicrosPerDelivery = s.CPUSeconds * 1e6 / float64(delivered)
	}
	return s
}

// verify sets OK.
func (r *Result) verify() {
	r.OK = r.Lost == 0 && r.Duplicates == 0 && r.OutOfOrder == 0 && r.Foreign == 0 &&
		r.Disconnected == 0 && r.ErrorCount == 0
}

// Failure says how the run broke the promise, or "" when it did not.
func (r *Result) Failure() string {
	if r.OK {
		return ""
	}
	var parts []string
	add := func(n int64, what string) {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.Lost, "lost")
	add(r.Duplicates, "duplicated")
	add(r.OutOfOrder, "out of order")
	add(r.Foreign, "from another room")
	add(int64(r.Disconnected), "connections dropped")
	add(int64(r.ErrorCount), "errors")
	return strings.Join(parts, ", ")
}

// WriteJSON writes r as one line of JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable writes r for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	if r.Mode == "idle" {
		row("idle connections", count(int64(r.Idle)))
		row("held", fmt.Sprintf("%.1f s", r.Held))
	} else {
		rate := "max (window " + count(int64(r.Window)) + "/publisher)"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%s msg/s", count(int64(r.Rate)))
		}
		row("workload", fmt.Sprintf("%d subs, %d pubs, %d rooms, %d B, %s, %s", r.Subs, r.Pubs, r.Rooms, r.Size, rate, r.Format))
		row("sent", fmt.Sprintf("%s msgs  %s/s", count(r.Sent), count(int64(r.SentPerSec))))
		row("delivered", fmt.Sprintf("%s msgs  %s/s", count(r.Delivered), count(int64(r.DeliveredPerSec))))
		row("lost", count(r.Lost))
		row("duplicates", count(r.Duplicates))
		row("out of order", count(r.OutOfOrder))
		if r.Resynced > 0 {
			row("resynced from log", count(r.Resynced))
		}
		if r.Stalls > 0 {
			row("window stalls", count(r.Stalls))
		}
		row("bench cpu", fmt.Sprintf("%.2f s (the load generator's own)", r.ClientCPUSeconds))
		row("latency p50", fmt.Sprintf("%.0f µs", r.Latency.P50))
		row("latency p90", fmt.Sprintf("%.0f µs", r.Latency.P90))
		row("latency p99", fmt.Sprintf("%.0f µs", r.Latency.P99))
		row("latency p99.9", fmt.Sprintf("%.0f µs", r.Latency.P999))
		row("latency max", fmt.Sprintf("%.0f µs", r.Latency.Max))
	}
	row("connect", fmt.Sprintf("%s conns in %.2f s (each p50 %.1f ms, p99 %.1f ms, max %.1f ms)",
		count(int64(r.Connect.Conns)), r.Connect.Seconds, r.Connect.P50ms, r.Connect.P99ms, r.Connect.MaxMs))
	cpu := fmt.Sprintf("bench %.2f s", r.Connect.BenchCPUSeconds)
	if r.Server != nil {
		cpu += fmt.Sprintf(", server %.2f s", r.Connect.ServerCPUSeconds)
	}
	row("connect cpu", cpu)
	if s := r.Server; s != nil {
		row("server cpu", fmt.Sprintf("%.2f s", s.CPUSeconds))
		if s.DeliveriesPerCPUSecond > 0 {
			row("deliveries per cpu s", count(int64(s.DeliveriesPerCPUSecond)))
			row("cpu per delivery", fmt.Sprintf("%.2f µs", s.CPUMicrosPerDelivery))
		}
		row("server rss", fmt.Sprintf("%s KiB before, %s KiB after", count(s.RSSBeforeKiB), count(s.RSSAfterKiB)))
		if r.Mode == "idle" {
			row("rss per connection", fmt.Sprintf("%.1f KiB", s.RSSPerConnKiB))
		}
	}
	if r.Disconnected > 0 {
		row("disconnected", count(int64(r.Disconnected)))
	}
	if r.ErrorCount > 0 {
		row("errors", count(int64(r.ErrorCount)))
	}
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED: " + r.Failure()
	}
	row("verdict", verdict)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	return nil
}

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
