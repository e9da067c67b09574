package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/forwarded"
	"github.com/berth-registry/berth/internal/logctx"
)

// Event actions, as registry:2's notifications name them.
const (
	ActionPush   = "push"
	ActionPull   = "pull"
	ActionMount  = "mount"
	ActionDelete = "delete"
)

// blobMediaType is what registry:2's events give as a blob's media type:
// blobs are opaque to it. Receivers filter blob events out by it
// (ignoredmediatypes: [application/octet-stream]).
const blobMediaType = "application/octet-stream"

// Event is a push, pull, mount or delete the API has answered with
// success: what registry:2's notifications report. The API fills it from
// what the request already had at hand; turning it into a notification
// (ids, URLs, references, JSON) is the EventSink's work, off the request
// path.
type Event struct {
	Action string
	Time   time.Time
	// Manifest is true when the target is a manifest (its URL is
	// .../manifests/<digest>), false for a blob.
	Manifest       bool
	Repository     string
	FromRepository string // mount: the repository the blob came from
	Digest         digest.Digest
	MediaType      string
	Size           int64
	Tag            string // the tag a manifest was pushed, pulled or deleted by
	// Body is a pushed or pulled manifest's body, for the descriptors it
	// references. It is shared with the registry's cache: never modify it.
	Body []byte
	// URLBase is the registry's absolute base URL as the client reached
	// it, with any path prefix: the target's URL is built on it.
	URLBase string
	Actor   string // the authenticated account; "" for anonymous
	Request EventRequest
}

// EventRequest describes the request that caused an event.
type EventRequest struct {
	ID        string // berth's request id (X-Request-Id)
	Addr      string // the client's address
	Host      string
	Method    string
	UserAgent string
}

// EventSink receives the API's events. Emit is called on the request path
// after the response status is decided: it must not block. The event is
// the sink's from then on (it is allocated once, for the sink to keep).
type EventSink interface {
	Emit(*Event)
}

// emit completes e with what the request says and hands it to the sink.
// It costs nothing without a sink; with one it cannot fail the request.
func (h *Handler) emit(r *http.Request, e Event) {
	if h.events != nil {
		h.send(r, e)
	}
}

// send is emit's work, apart so that e, which the sink keeps, is moved to
// the heap only when there is a sink (the compiler does it at function
// entry, before any check).
func (h *Handler) send(r *http.Request, e Event) {
	e.Time = time.Now()
	e.URLBase = h.urlBase
	if !strings.HasPrefix(e.URLBase, "http://") && !strings.HasPrefix(e.URLBase, "https://") {
		// Relative URLs suit Location headers; receivers need absolute ones.
		e.URLBase = forwarded.ExternalURL(r, "") + e.URLBase
	}
	if id := identityOf(r); id != nil {
		e.Actor = id.Account()
	}
	e.Request = EventRequest{
		ID:        logctx.RequestID(r.Context()),
		Addr:      remoteAddr(r),
		Host:      r.Host,
		Method:    r.Method,
		UserAgent: r.UserAgent(),
	}
	h.events.Emit(&e)
}

// remoteAddr is the client's address as registry:2 reports it in events:
// the first X-Forwarded-For entry, else X-Real-Ip, else the peer.
func remoteAddr(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if first = strings.TrimSpace(first); first != "" {
			return first
		}
	}
	if ip := strings.TrimSpace(r.Header.Get("X-Real-Ip")); ip != "" {
		return ip
	}
	return r.RemoteAddr
}
