package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Reasons an input is rejected, as the "reason" label of
// parley_rejected_inputs_total. Only ever add.
const (
	rejectTooBig       = "too_big"
	rejectBadUTF8      = "bad_utf8"
	rejectBinary       = "binary"
	rejectProtocol     = "protocol_violation"
	rejectBadCommand   = "bad_command"
	rejectRateLimited  = "rate_limited"
	rejectFlooding     = "flooding"
	rejectOverCapacity = "over_capacity"
	rejectOrigin       = "origin"
	rejectNotStored    = "not_stored"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg *prometheus.Registry

	connections      prometheus.Gauge
	connectionsTotal *prometheus.CounterVec
	received         prometheus.Counter
	delivered        prometheus.Counter
	bytesWritten     prometheus.Counter
	writes           prometheus.Counter
	rejected         *prometheus.CounterVec
	slow             *prometheus.CounterVec
	closes           *prometheus.CounterVec
	appendSeconds    prometheus.Histogram
}

func newMetrics(rooms func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_connections", Help: "Open WebSocket connections.",
		}),
		connectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_connections_total", Help: "WebSocket connections accepted, by format.",
		}, []string{"format"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_received_total", Help: "Messages received from clients and stored.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_delivered_total", Help: "Messages written to clients (live and replayed).",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_bytes_written_total", Help: "Bytes written to WebSocket connections.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_writes_total", Help: "Socket writes (each may carry many frames).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_rejected_inputs_total", Help: "Client inputs rejected, by reason.",
		}, []string{"reason"}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_slow_consumer_total", Help: "Slow-consumer actions: resync (caught up from the log) or disconnect (behind past --max-lag).",
		}, []string{"action"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_closes_total", Help: "Connections ended, by reason.",
		}, []string{"reason"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_append_seconds", Help: "Time to store a message (until acknowledged).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
	}
	m.reg.MustRegister(m.connections, m.connectionsTotal, m.received, m.delivered, m.bytesWritten,
		m.writes, m.rejected, m.slow, m.closes, m.appendSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_rooms", Help: "Rooms with members on this node."}, rooms),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, r := range []string{rejectTooBig, rejectBadUTF8, rejectBinary, rejectProtocol, rejectBadCommand,
		rejectRateLimited, rejectFlooding, rejectOverCapacity, rejectOrigin, rejectNotStored} {
		m.rejected.WithLabelValues(r)
	}
	m.slow.WithLabelValues("resync")
	m.slow.WithLabelValues("disconnect")
	return m
}
