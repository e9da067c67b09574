package server

import (
	"io"
	"net/http"
	"time"

	"github.com/berth-registry/berth/internal/api"
	"github.com/berth-registry/berth/internal/metrics"
)

// withMetrics records every request in m, labelled with registry:2's route
// names; paths outside the API (the token endpoint) are "other". It is
// installed only when metrics are enabled, so the hot paths pay nothing
// otherwise.
func withMetrics(next http.Handler, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := api.RouteName(r.URL.Path)
		if route == "" {
			route = "other"
		}
		done := m.Request(route, r.Method)
		start := time.Now()
		body := &countingBody{ReadCloser: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		done(status, body.n, rec.bytes, time.Since(start))
	})
}

// countingBody counts the request body bytes the handler read: for chunked
// uploads the only way to know the request's size.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
