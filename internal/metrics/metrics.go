// Package metrics holds berth's Prometheus metrics and the handler that
// serves them (http.debug.prometheus).
//
// The HTTP metrics keep registry:2's names, labels and buckets
// (registry_http_requests_total{handler,code,method}, ...), so dashboards
// and alerts written for registry:2 keep working after the switch. berth's
// own metrics are prefixed berth_.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry of collectors: the HTTP metrics, the Go runtime's
// and the process's, and whatever gauges the server adds.
type Metrics struct {
	reg *prometheus.Registry

	inFlight *prometheus.GaugeVec
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reqSize  *prometheus.HistogramVec
	respSize *prometheus.HistogramVec
}

// registry:2's buckets (docker/go-metrics' defaults): request durations from
// 5 ms to a minute, sizes from 1 KiB to 4 GiB in powers of two.
var (
	durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60}
	sizeBuckets     = prometheus.ExponentialBuckets(1024, 2, 22)
)

// New returns a fresh set of metrics; version is reported by
// berth_build_info.
func New(version string) *Metrics {
	const ns, sub = "registry", "http"
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "in_flight_requests",
			Help: "The in-flight HTTP requests",
		}, []string{"handler"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Total number of HTTP requests made.",
		}, []string{"handler", "code", "method"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help: "The HTTP request latencies in seconds.", Buckets: durationBuckets,
		}, []string{"handler", "method"}),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_size_bytes",
			Help: "The HTTP request sizes in bytes.", Buckets: sizeBuckets,
		}, []string{"handler"}),
		respSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "response_size_bytes",
			Help: "The HTTP response sizes in bytes.", Buckets: sizeBuckets,
		}, []string{"handler"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "berth_build_info", Help: "Always 1; the version label says which berth runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.inFlight, m.requests, m.duration, m.reqSize, m.respSize, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gauge adds a gauge whose value is read from f at every scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request counts a request to handler (a fixed route name, never a path:
// labels must stay few) as in flight; the returned function records how it
// ended.
func (m *Metrics) Request(handler, method string) (done func(code int, in, out int64, d time.Duration)) {
	flight := m.inFlight.WithLabelValues(handler)
	flight.Inc()
	method = knownMethod(method)
	return func(code int, in, out int64, d time.Duration) {
		flight.Dec()
		m.requests.WithLabelValues(handler, strconv.Itoa(code), method).Inc()
		m.duration.WithLabelValues(handler, method).Observe(d.Seconds())
		m.reqSize.WithLabelValues(handler).Observe(float64(in))
		m.respSize.WithLabelValues(handler).Observe(float64(out))
	}
}

// knownMethod keeps the method label to the methods HTTP defines: a client
// sending made-up methods must not grow the metrics without bound.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// Queue is one notification endpoint's state when metrics are scraped.
type Queue struct {
	Endpoint                     string
	Pending                      int
	Delivered, Failures, Dropped int64
}

// NotificationQueues reports the notification endpoints' queues, read from
// f at every scrape: berth_notifications_pending{endpoint} and the
// delivered, failures and dropped counters. registry:2 shows the same on
// /debug/vars; here they can be alerted on.
func (m *Metrics) NotificationQueues(f func() []Queue) {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("berth_notifications_"+name, help, []string{"endpoint"}, nil)
	}
	m.reg.MustRegister(&queueCollector{f: f,
		pending:   desc("pending", "Events waiting to be delivered to the endpoint."),
		delivered: desc("delivered_total", "Events the endpoint accepted."),
		failures:  desc("failures_total", "Delivery attempts that failed; each is retried after the endpoint's backoff."),
		dropped:   desc("dropped_total", "Events dropped, oldest first, because the endpoint's queue was full."),
	})
}

type queueCollector struct {
	f                                     func() []Queue
	pending, delivered, failures, dropped *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.delivered
	ch <- c.failures
	ch <- c.dropped
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, q := range c.f() {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(q.Pending), q.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(q.Delivered), q.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(q.Failures), q.Endpoint)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(q.Dropped), q.Endpoint)
	}
}
