package server

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/berth-registry/berth/internal/health"
	"github.com/berth-registry/berth/internal/logctx"
)

// withHealth answers every request 503 UNAVAILABLE while a health check
// fails, and GET / with 200 otherwise: registry:2's liveness answer, which
// Kubernetes probes and load balancers use.
func withHealth(next http.Handler, m *health.Monitor) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		healthy := m.Healthy()
		if !healthy || r.URL.Path == "/" {
			// Answered here, not by the API, which sets this on its own.
			w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		}
		if !healthy {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, unavailableBody)
			return
		}
		if r.URL.Path == "/" {
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// unavailableBody is registry:2's answer while unhealthy: the spec's error
// shape, with code UNAVAILABLE.
const unavailableBody = `{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","detail":"health check failed: please see /debug/health"}]}` + "\n"

func withHeaders(next http.Handler, headers http.Header) http.Handler {
	if len(headers) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header()[http.CanonicalHeaderKey(k)] = v
		}
		next.ServeHTTP(w, r)
	})
}

// recorder captures what the access log reports. It forwards ReadFrom so
// blob downloads keep using sendfile.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.bytes += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withRequestLog gives every request an id (echoed as X-Request-Id) and a
// logger carrying it as request_id, in the request context (logctx), so
// every line the request causes can be told apart. If enabled, it logs one
// access line per request: method, path, status, bytes, duration and the
// authenticated user. Only the path is logged, never the query (it may
// carry upload state) or any header value (credentials).
func withRequestLog(next http.Handler, log *slog.Logger, access bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(logctx.WithRequest(r.Context(), log, id))
		rec := &recorder{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(rec, r)
		if !access {
			return
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("user", logctx.Account(r.Context())),
			slog.String("remote", r.RemoteAddr),
		)
	})
}
