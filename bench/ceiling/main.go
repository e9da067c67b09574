// Command ceiling is a registry that does no work: it answers a manifest
// HEAD or GET the way berth does (the same headers, a small body) without
// routing, access checks or an index, and takes blob uploads (POST, PATCH,
// PUT, as docker and crane send them) by reading the bytes and, with
// -hash, computing their SHA-256, without storing anything. Run
// bench/loadgen against it to see what net/http, the kernel and the load
// generator alone allow on a machine: the ceiling for berth's manifest and
// push figures.
//
//	go run ./bench/ceiling -addr 127.0.0.1:5999 &
//	go run ./bench/loadgen head -url http://127.0.0.1:5999 -ref any/repo:tag
//	go run ./bench/loadgen push-large -url http://127.0.0.1:5999 -layers 4 -size 64MiB -parallel 4
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"
)

const digest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"

func main() {
	addr := flag.String("addr", "127.0.0.1:5999", "listen address")
	hashUploads := flag.Bool("hash", false, "compute each upload's SHA-256 (as a registry must)")
	flag.Parse()
	body := []byte(`{"schemaVersion":2}`)
	h := &handler{hash: *hashUploads, body: body}
	fmt.Fprintln(os.Stderr, http.ListenAndServe(*addr, h))
	os.Exit(1)
}

type handler struct {
	hash bool
	body []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Docker-Distribution-Api-Version", "registry/2.0")
	hdr.Set("X-Request-Id", "0123456789abcdef")
	switch {
	case strings.Contains(r.URL.Path, "/blobs/uploads/"):
		h.upload(w, r)
	case strings.Contains(r.URL.Path, "/blobs/"):
		w.WriteHeader(http.StatusNotFound) // every blob is new: upload it
	case r.Method == http.MethodPut:
		io.Copy(io.Discard, r.Body)
		hdr.Set("Docker-Content-Digest", digest)
		w.WriteHeader(http.StatusCreated)
	default:
		hdr.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		hdr.Set("Docker-Content-Digest", digest)
		hdr.Set("ETag", `"`+digest+`"`)
		hdr.Set("Content-Length", fmt.Sprint(len(h.body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(h.body)
		}
	}
}

// upload reads an upload's bytes (and hashes them with -hash) in 1 MiB
// reads, like berth, and stores nothing.
func (h *handler) upload(w http.ResponseWriter, r *http.Request) {
	var sum hash.Hash
	if h.hash {
		sum = sha256.New()
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Body.Read(buf)
		if sum != nil {
			sum.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	w.Header().Set("Location", "/v2/ceiling/blobs/uploads/upload")
	switch r.Method {
	case http.MethodPut:
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}
