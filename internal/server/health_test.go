package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/inmemory"
)

// statFailing fails Stat while down is set: a backend that stopped answering.
type statFailing struct {
	storage.Driver
	down atomic.Bool
}

func (d *statFailing) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	if d.down.Load() {
		return storage.FileInfo{}, errors.New("connection refused")
	}
	return d.Driver.Stat(ctx, p)
}

// With health.storagedriver, a storage backend that stops answering takes
// the registry out of rotation (503 on every request, as registry:2 does)
// after the threshold, and a working one brings it back.
func TestStorageHealthCheck(t *testing.T) {
	d := &statFailing{Driver: inmemory.New()}
	s, err := New(context.Background(), Options{
		Driver: d, Logger: slog.New(slog.DiscardHandler),
		StorageHealth: &StorageHealth{Interval: 5 * time.Millisecond, Threshold: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.ServeListener(ctx, ln) }()
	defer func() { cancel(); <-served }()
	base := "http://" + ln.Addr().String()

	waitFor := func(path string, code int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(base + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == code {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: never %d (last %v %v)", path, code, resp, err)
			}
			time.Sleep(5 * time.Millisecond) // polling an outcome with a deadline, not ordering events
		}
	}
	waitFor("/v2/", http.StatusOK)
	waitFor("/", http.StatusOK)
	d.down.Store(true)
	waitFor("/v2/", http.StatusServiceUnavailable)
	if f := s.health.Failing(); f["storagedriver_inmemory"] == "" {
		t.Errorf("failing = %v", f)
	}
	d.down.Store(false)
	waitFor("/v2/", http.StatusOK)
}
