package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/config"
)

func TestDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + filepath.Join(dir, "not", "yet")})
	if err != nil {
		t.Fatal(err)
	}
	// The root does not exist yet: its nearest existing ancestor decides.
	if got := dataDir(cfg); got != dir {
		t.Errorf("dataDir = %q, want %q", got, dir)
	}
	cfg, err = config.Load("", []string{"REGISTRY_STORAGE=inmemory"})
	if err != nil {
		t.Fatal(err)
	}
	if got := dataDir(cfg); got != "" {
		t.Errorf("dataDir with inmemory storage = %q, want none", got)
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(f, []byte("a:b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("", []string{"REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH=" + f, "REGISTRY_AUTH_HTPASSWD_REALM=r"})
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if got := unreadableFile(cfg, uid, gid); got != "" {
		t.Errorf("the owner cannot read %s?", got)
	}
	if got := unreadableFile(cfg, uid+12345, gid+12345); got != f {
		t.Errorf("unreadableFile for another user = %q, want %q", got, f)
	}
	os.Chmod(f, 0o644)
	if got := unreadableFile(cfg, uid+12345, gid+12345); got != "" {
		t.Errorf("a world-readable file reported unreadable: %q", got)
	}
}

func TestPrivilegedPort(t *testing.T) {
	if _, ok := privilegedPort("127.0.0.1:5000"); ok {
		t.Error("port 5000 reported privileged")
	}
	if _, ok := privilegedPort(":0"); ok {
		t.Error("port 0 reported privileged")
	}
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if string(b) == "1024\n" {
		if _, ok := privilegedPort("0.0.0.0:80"); !ok {
			t.Error("port 80 not reported privileged")
		}
	}
}
