package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/berth-registry/berth/internal/content"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/filesystem"
)

const uploadsOf = "/docker/registry/v2/repositories/lib/app/_uploads/"

// putOldUpload writes an upload that started two days ago straight into
// storage, as an abandoned one looks, and returns its id.
func putOldUpload(t *testing.T, d storage.Driver) string {
	t.Helper()
	id := uuid.NewString()
	stamp := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339Nano)
	if err := d.PutContent(context.Background(), uploadsOf+id+"/startedat", []byte(stamp)); err != nil {
		t.Fatal(err)
	}
	return id
}

func uploadExists(t *testing.T, d storage.Driver, id string) bool {
	t.Helper()
	_, err := d.Stat(context.Background(), uploadsOf+id)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// purgeRuns returns a Ran hook and the channel it signals after each run.
// The send never blocks: the loop must not wait for the test.
func purgeRuns() (func(content.PurgeResult, error), chan struct{}) {
	ch := make(chan struct{}, 1)
	return func(content.PurgeResult, error) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, ch
}

// waitRun waits for the purge loop to finish runs until cond holds.
func waitRun(t *testing.T, runs <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-runs:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func assertStopped(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.purger.done:
	default:
		t.Fatal("the purge loop is still running after Close")
	}
}

// With purging enabled the server purges old uploads at once (no jitter
// here), then again every interval, while serving; young uploads, such as
// one a client has just started, stay.
func TestUploadPurgingInTheBackground(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	first := putOldUpload(t, d)
	ran, runs := purgeRuns()
	s, err := New(context.Background(), Options{Driver: d, RootDirectory: root, Logger: slog.New(slog.DiscardHandler),
		UploadPurging: UploadPurging{Enabled: true, Age: time.Hour, Interval: 5 * time.Millisecond,
			FirstDelay: func() time.Duration { return 0 }, Ran: ran}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()

	waitRun(t, runs, "the first purge", func() bool { return !uploadExists(t, d, first) })

	resp, err := http.Post(hs.URL+"/v2/lib/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	young := loc[strings.LastIndexByte(loc, '/')+1:]
	if resp.StatusCode != http.StatusAccepted || !uploadExists(t, d, young) {
		t.Fatalf("start upload: %s, Location %q", resp.Status, loc)
	}
	second := putOldUpload(t, d)
	waitRun(t, runs, "a later purge", func() bool { return !uploadExists(t, d, second) })
	if !uploadExists(t, d, young) {
		t.Error("the upload just started was purged")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, s)
}

func TestUploadPurgingDryRun(t *testing.T) {
	root := t.TempDir()
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	id := putOldUpload(t, d)
	results := make(chan content.PurgeResult, 1)
	s, err := New(context.Background(), Options{Driver: d, RootDirectory: root, Logger: slog.New(slog.DiscardHandler),
		UploadPurging: UploadPurging{Enabled: true, Age: time.Hour, Interval: time.Hour, DryRun: true,
			FirstDelay: func() time.Duration { return 0 },
			Ran:        func(r content.PurgeResult, err error) { results <- r }}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case r := <-results:
		if r.Found != 1 || r.Purged != 1 {
			t.Errorf("dry run result = %+v; want 1 found, 1 that would be purged", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the dry run")
	}
	if !uploadExists(t, d, id) {
		t.Error("a dry run deleted an upload")
	}
}

// Purging is off when disabled, and in read-only mode whatever it says.
func TestUploadPurgingOff(t *testing.T) {
	on := UploadPurging{Enabled: true, Age: time.Hour, Interval: time.Hour, FirstDelay: func() time.Duration { return 0 },
		Ran: func(content.PurgeResult, error) { t.Error("a purge ran") }}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"disabled", Options{UploadPurging: UploadPurging{Age: time.Hour, Interval: time.Hour}}},
		{"read-only", Options{ReadOnly: true, UploadPurging: on}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.RootDirectory, tc.opts.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
			s, err := New(context.Background(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.purger != nil {
				t.Error("a purge loop was started")
			}
		})
	}
}

// blockingList holds the listing of uploads (which only the purge reads)
// until the caller's context ends, and says when it got there.
type blockingList struct {
	storage.Driver
	listing chan struct{}
}

func (d *blockingList) List(ctx context.Context, p string) ([]string, error) {
	if strings.HasSuffix(p, "/_uploads") {
		close(d.listing)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return d.Driver.List(ctx, p)
}

// Close interrupts a purge in progress and returns once the loop is gone.
func TestCloseStopsAPurge(t *testing.T) {
	root := t.TempDir()
	fs, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	putOldUpload(t, fs)
	d := &blockingList{Driver: fs, listing: make(chan struct{})}
	s, err := New(context.Background(), Options{Driver: d, RootDirectory: root, Logger: slog.New(slog.DiscardHandler),
		UploadPurging: UploadPurging{Enabled: true, Age: time.Hour, Interval: time.Hour,
			FirstDelay: func() time.Duration { return 0 },
			Ran:        func(content.PurgeResult, error) { t.Error("an interrupted purge was reported as a run") }}})
	if err != nil {
		t.Fatal(err)
	}
	<-d.listing
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, s)
}

// Close before the first purge (the jitter is still running) stops the
// loop too.
func TestCloseBeforeTheFirstPurge(t *testing.T) {
	s, err := New(context.Background(), Options{RootDirectory: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		UploadPurging: UploadPurging{Enabled: true, Age: time.Hour, Interval: time.Hour,
			FirstDelay: func() time.Duration { return time.Hour },
			Ran:        func(content.PurgeResult, error) { t.Error("a purge ran before its jitter was over") }}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertStopped(t, s)
}

// Without an injected delay, the first purge waits a random jitter below
// an hour, as registry:2's does.
func TestDefaultFirstDelay(t *testing.T) {
	for range 100 {
		if d := defaultFirstDelay(); d < 0 || d >= time.Hour {
			t.Fatalf("defaultFirstDelay() = %v, want within [0, 1h)", d)
		}
	}
}
