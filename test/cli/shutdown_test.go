package cli

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowUpload is a blob upload whose body the test feeds by hand: a PUT
// (the request that commits the blob) streaming from a pipe.
type slowUpload struct {
	w    *io.PipeWriter
	done chan struct{}
	resp *http.Response
	body []byte
	err  error
}

// startSlowUpload opens an upload and starts the final PUT with the first
// part of data, returning once berth's handler is reading the body (it
// answered the client's "Expect: 100-continue").
func startSlowUpload(t *testing.T, base, repo string, data []byte, first int) *slowUpload {
	t.Helper()
	resp, body := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s %s", resp.Status, body)
	}
	u := resolve(t, base, resp.Header.Get("Location"))
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPut, u+sep+"digest="+sha(data), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked: the size is not known up front
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	reading := make(chan struct{})
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got100Continue: func() { close(reading) },
	}))
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute, DisableKeepAlives: true}}
	s := &slowUpload{w: pw, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		resp, err := client.Do(req)
		if err != nil {
			s.err = err
			return
		}
		defer resp.Body.Close()
		s.resp = resp
		s.body, s.err = io.ReadAll(resp.Body)
	}()
	go pw.Write(data[:first]) // blocks until the transport sends the body
	select {
	case <-reading:
	case <-s.done:
		t.Fatalf("upload ended before berth read its body: %v", s.err)
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not start reading the upload within 30s")
	}
	return s
}

// waitRefused waits until a new TCP connection to addr is refused.
func waitRefused(t *testing.T, p *proc, addr string) {
	t.Helper()
	waitLog(t, p, "shutting down")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return
		case errors.Is(err, syscall.ECONNRESET):
			// Queued in the backlog as the listener closed: try again.
		case err != nil:
			t.Fatalf("dial during drain: %v, want connection refused", err)
		default:
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("berth still accepts connections 10s after it began shutting down")
		}
		// The listener closes right after the "shutting down" line;
		// wait for the next line (or a short tick) before dialing again.
		_, changed := p.log.snapshot()
		select {
		case <-changed:
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func drainConfig(t *testing.T, dir, root, addr, drain string) string {
	return writeFile(t, filepath.Join(dir, "config-"+drain+".yml"), `version: 0.1
storage:
  filesystem:
    rootdirectory: `+root+`
http:
  addr: `+addr+`
  draintimeout: `+drain+`
`)
}

// On SIGTERM berth stops accepting connections and lets the requests in
// flight finish, within http.draintimeout: an upload streaming when the
// signal comes completes, and its blob is there after a restart.
func TestSIGTERMDrainsInFlightUpload(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	addr := freeAddr(t)
	cfg := drainConfig(t, dir, root, addr, "60s")
	p := serve(t, dir, "http://"+addr, nil, cfg)

	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	up := startSlowUpload(t, p.base, "drain/test", data, 4096)

	p.signal(syscall.SIGTERM)
	waitRefused(t, p, addr)
	select {
	case <-p.done:
		t.Fatalf("berth exited with an upload in flight: %v", p.err)
	default:
	}

	// The rest of the body, after the listener is gone.
	if _, err := up.w.Write(data[4096:]); err != nil {
		t.Fatalf("writing the rest of the upload: %v", err)
	}
	up.w.Close()
	<-up.done
	if up.err != nil {
		t.Fatalf("in-flight upload failed during drain: %v", up.err)
	}
	if up.resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight upload: %s %s, want 201", up.resp.Status, up.body)
	}
	if err, ok := p.wait(15 * time.Second); !ok {
		t.Fatal("berth did not exit after the last request finished")
	} else if err != nil {
		t.Fatalf("berth exited with %v", err)
	}

	// The blob was committed.
	addr2 := freeAddr(t)
	p2 := serve(t, dir, "http://"+addr2, nil, drainConfig(t, dir, root, addr2, "0s"))
	resp, got := do(t, http.MethodGet, p2.base+"/v2/drain/test/blobs/"+sha(data), "", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("blob after restart: %s, %d bytes", resp.Status, len(got))
	}
}

// With a short http.draintimeout (or 0, registry:2's default: stop at once)
// an upload that does not finish does not hold the process: it exits in
// bounded time, the client sees its connection fail, and nothing of the
// upload becomes visible.
func TestSIGTERMWithShortDrainTimeoutExits(t *testing.T) {
	for _, drain := range []string{"1s", "0s"} {
		t.Run(drain, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "data")
			addr := freeAddr(t)
			p := serve(t, dir, "http://"+addr, nil, drainConfig(t, dir, root, addr, drain))

			data := bytes.Repeat([]byte("x"), 1<<20)
			up := startSlowUpload(t, p.base, "drain/stuck", data, 4096)
			start := time.Now()
			p.signal(syscall.SIGTERM)
			err, ok := p.wait(20 * time.Second)
			if !ok {
				t.Fatalf("berth (draintimeout %s) still running 20s after SIGTERM", drain)
			}
			if err != nil {
				t.Errorf("berth exited with %v", err)
			}
			t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
			up.w.CloseWithError(errors.New("test gave up"))
			<-up.done
			if up.err == nil && up.resp.StatusCode == http.StatusCreated {
				t.Fatal("the unfinished upload succeeded")
			}

			addr2 := freeAddr(t)
			p2 := serve(t, dir, "http://"+addr2, nil, drainConfig(t, dir, root, addr2, "0s"))
			resp, _ := do(t, http.MethodHead, p2.base+"/v2/drain/stuck/blobs/"+sha(data), "", nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("blob of the cut upload after restart: %s, want 404", resp.Status)
			}
		})
	}
}
