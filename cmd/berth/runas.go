package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-registry/berth/internal/config"
)

// runAsEnv names the variable that makes berth, started as root, give up
// root for the owner of its data directory. The container image sets it to
// "auto": a volume berth created (or one chowned to it) is served without
// root, an existing registry:2 volume (owned by root) still works.
const runAsEnv = "BERTH_USER"

// dropPrivileges applies BERTH_USER. With "auto" and uid 0, berth becomes
// the owner of the directory holding its data (the storage root directory,
// or the index's directory for other storage drivers) unless that owner is
// root, or the directory's entries have mixed owners (then berth stays root,
// as registry:2 runs, and says why).
func dropPrivileges(cfg *config.Config, log *slog.Logger) error {
	mode := os.Getenv(runAsEnv)
	switch mode {
	case "", "root":
		return nil
	case "auto":
	default:
		return fmt.Errorf("%s=%q: the only values are \"auto\" (become the owner of the data directory when started as root) and \"root\" or empty (do not change user)", runAsEnv, mode)
	}
	if os.Getuid() != 0 {
		return nil
	}
	dir := dataDir(cfg)
	if dir == "" {
		log.Info("running as root: no data directory to take the owner of (in-memory storage)")
		return nil
	}
	uid, gid, mixed, err := ownerOf(dir)
	if err != nil {
		return fmt.Errorf("%s=auto: %w", runAsEnv, err)
	}
	if mixed {
		log.Warn("running as root because the data directory's entries have different owners; "+
			"chown -R it to one user to run unprivileged", "dir", dir)
		return nil
	}
	if uid == 0 {
		log.Info("running as root because the data directory is owned by root, as registry:2 runs; "+
			"chown -R it to a non-root user (the image uses 65532:65532) to run unprivileged", "dir", dir)
		return nil
	}
	if f := unreadableFile(cfg, uid, gid); f != "" {
		log.Info("running as root: a file the configuration names is readable by root only, as registry:2 could assume", "file", f, "uid", uid)
		return nil
	}
	if tls := cfg.HTTP.TLS; tls != nil && tls.LetsEncrypt != nil {
		log.Info("running as root: http.tls.letsencrypt needs its cache file and may need port 80")
		return nil
	}
	if port, ok := privilegedPort(cfg.HTTP.Addr); ok {
		log.Info("running as root: http.addr is a privileged port on this network namespace", "addr", cfg.HTTP.Addr, "port", port)
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("%s=auto: setgroups: %w", runAsEnv, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("%s=auto: setgid %d: %w", runAsEnv, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("%s=auto: setuid %d: %w", runAsEnv, uid, err)
	}
	log.Info("running unprivileged as the owner of the data directory", "dir", dir, "uid", uid, "gid", gid)
	return nil
}

// configFile is a file the configuration names, by its key.
type configFile struct{ key, path string }

// configFiles lists the files the configuration names that berth reads at
// start-up: htpasswd, token certificates, TLS certificate, key and client
// CAs. URLs (a JWKS endpoint) are left out.
func configFiles(cfg *config.Config) []configFile {
	var files []configFile
	add := func(key, path string) {
		if path != "" && !strings.Contains(path, "://") {
			files = append(files, configFile{key, path})
		}
	}
	if h := cfg.Auth.HTPasswd; h != nil {
		add("auth.htpasswd.path", h.Path)
	}
	if t := cfg.Auth.Token; t != nil {
		add("auth.token.rootcertbundle", t.RootCertBundle)
		add("auth.token.jwks", t.JWKS)
	}
	if t := cfg.HTTP.TLS; t != nil {
		add("http.tls.certificate", t.Certificate)
		add("http.tls.key", t.Key)
		for i, ca := range t.ClientCAs {
			add(fmt.Sprintf("http.tls.clientcas[%d]", i), ca)
		}
	}
	return files
}

// unreadableFile returns the first file the configuration names that
// exists and that uid:gid could not read.
func unreadableFile(cfg *config.Config, uid, gid int) string {
	for _, f := range configFiles(cfg) {
		st, err := os.Stat(f.path)
		if err != nil {
			continue
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		m := st.Mode().Perm()
		readable := m&0o004 != 0 ||
			(int(sys.Gid) == gid && m&0o040 != 0) ||
			(int(sys.Uid) == uid && m&0o400 != 0)
		if !readable {
			return f.path
		}
	}
	return ""
}

// privilegedPort reports whether addr's port needs root to bind here: below
// net.ipv4.ip_unprivileged_port_start (1024 on hosts; Docker sets 0 inside
// containers with their own network, so -p 8082:80 works unprivileged).
func privilegedPort(addr string) (int, bool) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port == 0 {
		return 0, false
	}
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	return port, port < start
}

// dataDir is the directory whose owner berth should run as: the nearest
// existing ancestor of the index file (inside the storage root for the
// filesystem driver), or "" when nothing is kept on disk.
func dataDir(cfg *config.Config) string {
	p := cfg.IndexPath()
	if p == "" {
		return ""
	}
	if cfg.Storage.Filesystem != nil && cfg.Berth.Index.Path == "" {
		p = cfg.Storage.Filesystem.RootDirectory
	} else {
		p = filepath.Dir(p)
	}
	p, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// ownerOf returns the owner of dir, and whether its entries (docker/,
// berth/) have other owners.
func ownerOf(dir string) (uid, gid int, mixed bool, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return 0, 0, false, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false, errors.New("cannot read file owners on this system")
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrPermission) {
		return 0, 0, false, err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		if s, ok := info.Sys().(*syscall.Stat_t); ok && s.Uid != sys.Uid {
			mixed = true
		}
	}
	return int(sys.Uid), int(sys.Gid), mixed, nil
}
