// Package health runs registry:2's periodic health checks (the health
// section: the storage driver, files, HTTP URIs, TCP addresses) and keeps
// their verdict. While a check is failing the server answers every request
// with 503, as registry:2 does, so a load balancer or an orchestrator's
// probe takes the instance out of rotation; /debug/health on the debug
// listener says which check fails and why.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one periodic check.
type Check struct {
	// Name identifies the check in /debug/health ("storagedriver_s3",
	// "file:/etc/registry/down", ...).
	Name string
	// Interval is the time between two runs; registry:2's default is 10s.
	Interval time.Duration
	// Threshold is how many failures in a row make the check fail; 0 or 1
	// is the first failure. One success makes it pass again.
	Threshold int
	// Run performs the check; an error is a failure.
	Run func(ctx context.Context) error
}

// DefaultInterval is registry:2's interval for checks that do not set one.
const DefaultInterval = 10 * time.Second

// Monitor runs checks and keeps their state.
type Monitor struct {
	checks []Check

	mu       sync.Mutex
	failures []int    // consecutive failures, per check
	failing  []string // the last error of each failing check, "" if passing
	healthy  atomic.Bool
}

// New returns a monitor of checks, passing until a check says otherwise.
func New(checks []Check) *Monitor {
	m := &Monitor{checks: checks, failures: make([]int, len(checks)), failing: make([]string, len(checks))}
	m.healthy.Store(true)
	return m
}

// Healthy reports whether every check passes. It is one atomic load: the
// server asks it on every request.
func (m *Monitor) Healthy() bool { return m.healthy.Load() }

// Start runs every check at once and then every Interval, each on its own
// goroutine, until ctx ends; stop ends them too and waits for them.
func (m *Monitor) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, c := range m.checks {
		interval := c.Interval
		if interval <= 0 {
			interval = DefaultInterval
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				m.RunCheck(ctx, i)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// RunCheck runs check i once and records the result. A check is bounded by
// its interval, so a hung backend shows as a failure rather than a check
// that never reports.
func (m *Monitor) RunCheck(ctx context.Context, i int) {
	c := m.checks[i]
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	cctx, cancel := context.WithTimeout(ctx, interval)
	err := c.Run(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the result says nothing about the backend
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.failures[i], m.failing[i] = 0, ""
	} else {
		m.failures[i]++
		if m.failures[i] >= max(c.Threshold, 1) {
			m.failing[i] = err.Error()
		}
	}
	healthy := true
	for _, f := range m.failing {
		healthy = healthy && f == ""
	}
	m.healthy.Store(healthy)
}

// Failing returns the failing checks by name, with their last error.
func (m *Monitor) Failing() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for i, f := range m.failing {
		if f != "" {
			out[m.checks[i].Name] = f
		}
	}
	return out
}

// Names lists the checks, sorted.
func (m *Monitor) Names() []string {
	names := make([]string, len(m.checks))
	for i, c := range m.checks {
		names[i] = c.Name
	}
	sort.Strings(names)
	return names
}

// Handler serves /debug/health as registry:2 does: a JSON object of the
// failing checks and their errors ({} when all pass), with 503 while any
// fails.
func (m *Monitor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failing := m.Failing()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		if len(failing) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(failing)
	})
}

// FileCheck fails while a file exists at path: creating it takes the
// instance out of rotation (registry:2's health.file).
func FileCheck(path string) func(context.Context) error {
	return func(context.Context) error {
		if _, err := os.Stat(path); err == nil {
			return errors.New("file exists")
		}
		return nil
	}
}

// HTTPCheck sends HEAD to uri with headers and fails unless the answer has
// status (200 if 0) within timeout (the interval if 0) (registry:2's
// health.http).
func HTTPCheck(uri string, headers http.Header, status int, timeout time.Duration) func(context.Context) error {
	if status == 0 {
		status = http.StatusOK
	}
	client := &http.Client{Timeout: timeout}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, uri, nil)
		if err != nil {
			return err
		}
		for k, v := range headers {
			req.Header[http.CanonicalHeaderKey(k)] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("downstream service returned unexpected status: %d", resp.StatusCode)
		}
		return nil
	}
}

// TCPCheck fails unless a TCP connection to addr opens within timeout (the
// interval if 0) (registry:2's health.tcp).
func TCPCheck(addr string, timeout time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connection to %s failed: %w", addr, err)
		}
		return conn.Close()
	}
}
