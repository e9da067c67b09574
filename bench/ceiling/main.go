// Command ceiling is a net/http server that answers every request the way
// berth answers a manifest HEAD or GET by tag (the same headers, a small
// body) without doing any work: no routing, no access check, no index. Run
// bench/loadgen against it to see what net/http and the kernel alone allow
// on a machine, the ceiling for berth's manifest figures:
//
//	go run ./bench/ceiling 127.0.0.1:5999 &
//	go run ./bench/loadgen head -url http://127.0.0.1:5999 -ref any/repo:tag -conns 64 -duration 10s
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ceiling ADDR")
		os.Exit(2)
	}
	const digest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"
	body := []byte(`{"schemaVersion":2}`)
	err := http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Docker-Distribution-Api-Version", "registry/2.0")
		h.Set("X-Request-Id", "0123456789abcdef")
		h.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		h.Set("Docker-Content-Digest", digest)
		h.Set("ETag", `"`+digest+`"`)
		h.Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	}))
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
