// Package notify delivers registry:2's notifications: webhooks POSTed to
// the endpoints of notifications.endpoints when content is pushed, pulled,
// mounted or deleted.
//
// The request path only hands an api.Event to Emit, which makes a
// non-blocking channel send per endpoint. Each endpoint
// has its own bounded queue (the channel) and one sender goroutine that
// builds the event (id, URL, references), POSTs it and retries it until it
// is delivered, so events reach an endpoint in order and a slow or dead
// endpoint holds up nothing else. A full queue drops its oldest event.
// Like registry:2's, the queues are in memory: events still queued when
// the process stops are lost.
package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/berth-registry/berth/internal/api"
)

// registry:2's defaults for an endpoint's timeout, threshold and backoff.
const (
	DefaultTimeout   = time.Second
	DefaultThreshold = 10
	DefaultBackoff   = time.Second
	// DefaultQueueSize bounds each endpoint's queue (registry:2's is
	// unbounded).
	DefaultQueueSize = 10000
)

// Endpoint is one receiver (notifications.endpoints[]).
type Endpoint struct {
	Name string
	URL  string // http or https
	// Disabled endpoints are skipped (disabled: true).
	Disabled bool
	// Headers are sent with every request, e.g. Authorization. They are
	// never logged.
	Headers http.Header
	// Timeout bounds one delivery attempt; 0 is DefaultTimeout.
	Timeout time.Duration
	// Threshold is how many failed attempts in a row make the endpoint
	// logged as failing; 0 is DefaultThreshold.
	Threshold int
	// Backoff is the wait after a failed attempt; 0 is DefaultBackoff.
	Backoff time.Duration
	// IgnoredMediaTypes and IgnoredActions are not sent to this endpoint
	// (ignoredmediatypes with ignore.mediatypes, ignore.actions).
	IgnoredMediaTypes []string
	IgnoredActions    []string
}

// Options configure a Notifier.
type Options struct {
	Endpoints []Endpoint
	// IncludeReferences adds a manifest's references to its push and pull
	// events (notifications.events.includereferences).
	IncludeReferences bool
	// SourceAddr is the instance's host:port (see SourceAddr), the events'
	// source.addr.
	SourceAddr string
	// QueueSize bounds each endpoint's queue; 0 is DefaultQueueSize.
	QueueSize int
	// Transport carries the requests; nil is a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Notifier sends events to the endpoints. It implements api.EventSink.
type Notifier struct {
	endpoints []*endpoint
	log       *slog.Logger
	closed    atomic.Bool
	closing   chan struct{}      // closed by Close: senders drain and stop
	cancel    context.CancelFunc // aborts deliveries when the flush time is up
	wg        sync.WaitGroup
}

// New starts a sender per endpoint. Close stops them.
func New(opts Options) (*Notifier, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	tr := opts.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	src := Source{Addr: opts.SourceAddr, InstanceID: uuid.NewString()}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{log: log, closing: make(chan struct{}), cancel: cancel}
	for _, cfg := range opts.Endpoints {
		if cfg.Disabled {
			log.Info("notifications endpoint disabled, skipping", "endpoint", cfg.Name)
			continue
		}
		ep, err := newEndpoint(cfg, opts, src, tr, log)
		if err != nil {
			cancel()
			return nil, err
		}
		n.endpoints = append(n.endpoints, ep)
	}
	for _, ep := range n.endpoints {
		n.wg.Go(func() { ep.run(ctx, n.closing) })
	}
	return n, nil
}

// Emit queues e for every endpoint that does not ignore it; the queues
// share it, and nothing modifies it. It never blocks: a full queue drops
// its oldest event to make room.
func (n *Notifier) Emit(e *api.Event) {
	if n.closed.Load() {
		return
	}
	for _, ep := range n.endpoints {
		if !ep.ignores(e) {
			ep.enqueue(e)
		}
	}
}

// Close stops taking events and delivers those queued until ctx ends;
// then it abandons the rest and logs how many were lost. Call it once
// requests have stopped.
func (n *Notifier) Close(ctx context.Context) {
	if !n.closed.CompareAndSwap(false, true) {
		return
	}
	close(n.closing)
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
}

// SourceAddr is registry:2's source.addr for a listen address: this
// host's name with the listener's port.
func SourceAddr(listen string) string {
	host, err := os.Hostname()
	if err != nil {
		return listen
	}
	if _, port, err := net.SplitHostPort(listen); err == nil {
		return net.JoinHostPort(host, port)
	}
	return host
}

type endpoint struct {
	Endpoint
	safeURL           string // for logs: no user info
	client            *http.Client
	src               Source
	includeReferences bool
	ignoredTypes      map[string]bool
	ignoredActions    map[string]bool
	log               *slog.Logger

	queue     chan *api.Event
	dropped   atomic.Int64 // oldest events dropped from a full queue
	reported  int64        // dropped, as last logged (sender only)
	delivered atomic.Int64 // events the endpoint accepted
	failures  atomic.Int64 // delivery attempts that failed (each retried)
}

// QueueStats is one endpoint's queue and delivery counts, for metrics.
type QueueStats struct {
	Endpoint  string
	Pending   int   // events waiting in the queue
	Delivered int64 // events the endpoint accepted
	Failures  int64 // failed delivery attempts (each is retried)
	Dropped   int64 // events dropped from a full queue
}

// Stats reports every endpoint's queue and counts, in configuration order.
func (n *Notifier) Stats() []QueueStats {
	out := make([]QueueStats, len(n.endpoints))
	for i, ep := range n.endpoints {
		out[i] = QueueStats{Endpoint: ep.Name, Pending: len(ep.queue),
			Delivered: ep.delivered.Load(), Failures: ep.failures.Load(), Dropped: ep.dropped.Load()}
	}
	return out
}

func newEndpoint(cfg Endpoint, opts Options, src Source, tr http.RoundTripper, log *slog.Logger) (*endpoint, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notifications endpoint %q: url must be an absolute http or https URL", cfg.Name)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	ep := &endpoint{
		Endpoint:          cfg,
		safeURL:           u.Redacted(),
		client:            &http.Client{Transport: tr, Timeout: cfg.Timeout},
		src:               src,
		includeReferences: opts.IncludeReferences,
		log:               log.With("endpoint", cfg.Name, "url", u.Redacted()),
		queue:             make(chan *api.Event, opts.QueueSize),
	}
	if len(cfg.IgnoredMediaTypes) > 0 {
		ep.ignoredTypes = make(map[string]bool)
		for _, t := range cfg.IgnoredMediaTypes {
			ep.ignoredTypes[t] = true
		}
	}
	if len(cfg.IgnoredActions) > 0 {
		ep.ignoredActions = make(map[string]bool)
		for _, a := range cfg.IgnoredActions {
			ep.ignoredActions[a] = true
		}
	}
	// Header names only: their values are credentials.
	ep.log.Info("notifications endpoint configured", "timeout", cfg.Timeout, "threshold", cfg.Threshold,
		"backoff", cfg.Backoff, "headers", slices.Sorted(maps.Keys(cfg.Headers)))
	return ep, nil
}

func (ep *endpoint) ignores(e *api.Event) bool {
	return ep.ignoredTypes[e.MediaType] || ep.ignoredActions[e.Action]
}

// enqueue puts e at the end of the queue, first dropping the oldest
// events if it is full. Both steps are non-blocking; the loop only turns
// again if the sender or another request raced it for the freed slot.
func (ep *endpoint) enqueue(e *api.Event) {
	for {
		select {
		case ep.queue <- e:
			return
		default:
		}
		select {
		case <-ep.queue:
			ep.dropped.Add(1) // logged by the sender, not here on the request path
		default:
		}
	}
}

// run delivers the queue in order until closing, then what is left until
// ctx is cancelled.
func (ep *endpoint) run(ctx context.Context, closing <-chan struct{}) {
	for {
		var e *api.Event
		select {
		case e = <-ep.queue:
		case <-closing:
			select {
			case e = <-ep.queue:
			default:
				ep.reportDrops()
				return
			}
		}
		if !ep.deliver(ctx, newEvent(e, ep.src, ep.includeReferences)) {
			// Only a cancelled ctx ends delivery: shutdown's time is up.
			ep.reportDrops()
			ep.log.Error("notifications: shutting down with events undelivered; they are lost", "events", 1+len(ep.queue))
			return
		}
		ep.reportDrops()
	}
}

// reportDrops logs events dropped from a full queue since last time.
func (ep *endpoint) reportDrops() {
	if d := ep.dropped.Load(); d != ep.reported {
		ep.log.Error("notifications: queue full, oldest events dropped", "dropped", d-ep.reported, "dropped_total", d, "queue_size", cap(ep.queue))
		ep.reported = d
	}
}

// deliver sends ev until the endpoint accepts it, waiting Backoff after
// each failure. It returns false if ctx ends first.
func (ep *endpoint) deliver(ctx context.Context, ev Event) bool {
	body, err := marshalEnvelope(ev)
	if err != nil {
		// Cannot happen with these types; never retry what cannot succeed.
		ep.log.Error("notifications: cannot encode event; dropped", "err", err)
		return true
	}
	for failures := 0; ; {
		err := ep.post(ctx, body)
		if err == nil {
			ep.delivered.Add(1)
			if failures >= ep.Threshold {
				ep.log.Info("notifications: endpoint accepts events again", "failed_attempts", failures)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		ep.failures.Add(1)
		failures++
		if failures == ep.Threshold {
			ep.log.Warn("notifications: endpoint failing; retrying", "failed_attempts", failures, "backoff", ep.Backoff, "err", err)
		} else {
			ep.log.Debug("notifications: delivery failed; retrying", "failed_attempts", failures, "err", err)
		}
		t := time.NewTimer(ep.Backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// post makes one delivery attempt. As in registry:2, a 2xx or 3xx answer
// (after redirects are followed) counts as delivered.
func (ep *endpoint) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body)) // rewindable for redirects
	if err != nil {
		return err
	}
	for k, vs := range ep.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", MediaType)
	resp, err := ep.client.Do(req)
	if err != nil {
		return err // *url.Error: its URL has the password redacted
	}
	drain(resp)
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return nil
}

// drain reads a little of an answer's body so the connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
