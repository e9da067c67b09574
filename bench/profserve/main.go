// Command profserve runs berth's registry in-process, as `berth serve` does
// for a filesystem root, with net/http/pprof on a separate debug listener, so
// berth can be profiled under real load from bench/loadgen without adding a
// debug endpoint to berth itself. bench/profile.sh drives it.
//
//	profserve -root DIR -addr 127.0.0.1:5000 -debug 127.0.0.1:6060
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/berth-registry/berth/internal/server"
)

func main() {
	root := flag.String("root", "", "storage root directory")
	addr := flag.String("addr", "127.0.0.1:5000", "registry listen address")
	debug := flag.String("debug", "127.0.0.1:6060", "pprof listen address")
	mutex := flag.Int("mutex-fraction", 0, "runtime.SetMutexProfileFraction")
	block := flag.Int("block-rate", 0, "runtime.SetBlockProfileRate (ns)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *root == "" {
		log.Error("-root is required")
		os.Exit(2)
	}
	runtime.SetMutexProfileFraction(*mutex)
	runtime.SetBlockProfileRate(*block)
	ln, err := net.Listen("tcp", *debug)
	if err != nil {
		log.Error("debug listener", "err", err)
		os.Exit(1)
	}
	go http.Serve(ln, nil) // http.DefaultServeMux, where net/http/pprof registers

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, server.Options{Addr: *addr, RootDirectory: *root, DeleteEnabled: true, Logger: log})
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer srv.Close()
	if err := srv.Serve(ctx); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
