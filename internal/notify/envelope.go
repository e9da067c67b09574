package notify

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/berth-registry/berth/internal/api"
)

// MediaType is the Content-Type of the envelope, registry:2's.
const MediaType = "application/vnd.docker.distribution.events.v1+json"

// Envelope is the body of a notification: registry:2's
// {"events":[...]}. berth sends one event per envelope, as registry:2
// does in practice, so receivers that read only the first event see them
// all.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one event as registry:2 serialises it (its
// notifications.Event): the field names, their omission when empty and the
// request record's always-present id, method and useragent are what
// receivers written for registry:2 parse.
type Event struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    Target    `json:"target"`
	Request   Request   `json:"request"`
	Actor     Actor     `json:"actor"`
	Source    Source    `json:"source"`
}

// Target is what the event is about.
type Target struct {
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Digest    string `json:"digest,omitempty"`
	// Length repeats Size: registry:2 keeps it for older receivers.
	Length         int64        `json:"length,omitempty"`
	Repository     string       `json:"repository,omitempty"`
	FromRepository string       `json:"fromRepository,omitempty"`
	URL            string       `json:"url,omitempty"`
	Tag            string       `json:"tag,omitempty"`
	References     []Descriptor `json:"references,omitempty"`
}

// Descriptor is a content descriptor a manifest references, with the
// fields registry:2 reports.
type Descriptor struct {
	MediaType   string            `json:"mediaType,omitempty"`
	Size        int64             `json:"size,omitempty"`
	Digest      string            `json:"digest,omitempty"`
	URLs        []string          `json:"urls,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    json.RawMessage   `json:"platform,omitempty"` // as the manifest has it
}

// Request is the request that caused the event.
type Request struct {
	ID        string `json:"id"`
	Addr      string `json:"addr,omitempty"`
	Host      string `json:"host,omitempty"`
	Method    string `json:"method"`
	UserAgent string `json:"useragent"`
}

// Actor is who made the request: the authenticated account.
type Actor struct {
	Name string `json:"name,omitempty"`
}

// Source is the registry instance that generated the event.
type Source struct {
	Addr       string `json:"addr,omitempty"`
	InstanceID string `json:"instanceID,omitempty"`
}

// newEvent turns what the API reported into the event sent. It runs in
// an endpoint's sender, off the request path.
func newEvent(e *api.Event, src Source, includeReferences bool) Event {
	ev := Event{
		ID:        uuid.NewString(),
		Timestamp: e.Time.UTC(),
		Action:    e.Action,
		Target: Target{
			MediaType:      e.MediaType,
			Size:           e.Size,
			Digest:         string(e.Digest),
			Length:         e.Size,
			Repository:     e.Repository,
			FromRepository: e.FromRepository,
			Tag:            e.Tag,
		},
		Request: Request{
			ID: e.Request.ID, Addr: e.Request.Addr, Host: e.Request.Host,
			Method: e.Request.Method, UserAgent: e.Request.UserAgent,
		},
		Actor:  Actor{Name: e.Actor},
		Source: src,
	}
	// registry:2 links to what was pushed, pulled or mounted, by digest;
	// a deleted target has no URL.
	if e.Action != api.ActionDelete && e.Digest != "" {
		kind := "/blobs/"
		if e.Manifest {
			kind = "/manifests/"
		}
		ev.Target.URL = e.URLBase + "/v2/" + e.Repository + kind + string(e.Digest)
	}
	if includeReferences && e.Manifest && len(e.Body) > 0 {
		ev.Target.References = references(e.Body)
	}
	return ev
}

// references are the descriptors a manifest body points at, as
// registry:2's Manifest.References() lists them: an image's config and
// layers, an index's manifests. The body was validated when pushed; one
// that does not decode has none.
func references(body []byte) []Descriptor {
	var doc struct {
		Config    *Descriptor  `json:"config"`
		Layers    []Descriptor `json:"layers"`
		Manifests []Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil
	}
	var refs []Descriptor
	if doc.Config != nil {
		refs = append(refs, *doc.Config)
	}
	refs = append(refs, doc.Layers...)
	return append(refs, doc.Manifests...)
}

// marshalEnvelope encodes ev in its envelope, once per event: retries
// resend the same bytes.
func marshalEnvelope(ev Event) ([]byte, error) {
	return json.Marshal(Envelope{Events: []Event{ev}})
}
