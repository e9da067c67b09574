package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// registry2Config is the config.yml the registry:2 image ships at
// /etc/docker/registry/config.yml (distribution 2.8), with the storage root
// moved to a temp dir.
func registry2Config(root string) string {
	return `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: ` + root + `
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`
}

// stopped sends SIGTERM and waits for a clean exit.
func (p *proc) stopClean(t *testing.T) {
	t.Helper()
	p.signal(os.Interrupt)
	err, ok := p.wait(15 * time.Second)
	if !ok {
		t.Fatal("berth did not exit within 15s of SIGINT")
	}
	if err != nil {
		t.Fatalf("berth exited with %v; log:\n%s", err, p.log.String())
	}
}

// Seed 001 ("Flexible Private Docker Registry Infrastructure") runs the
// build servers' registry writable and every other server's read-only with
// REGISTRY_STORAGE_MAINTENANCE_READONLY='enabled: true', all on one store
// (Swift there, a directory here), and expects pushes to fail on the
// read-only ones while pulls work. The same setting in config.yml must do
// the same.
func TestSeedReadOnly(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "registry")
	img := newImage("readonly")

	// The build server: writable, configured by environment only.
	addr := freeAddr(t)
	w := serve(t, dir, "http://"+addr, []string{
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + root,
		"REGISTRY_HTTP_ADDR=" + addr,
	})
	push(t, w.base, "alpine", "latest", img)
	w.stopClean(t)

	cases := []struct {
		name string
		env  func(addr string) []string
		args func(addr string) []string
	}{
		{
			name: "environment",
			env: func(addr string) []string {
				return []string{
					"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true",
					"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + root,
					"REGISTRY_HTTP_ADDR=" + addr,
				}
			},
		},
		{
			name: "config file",
			args: func(addr string) []string {
				return []string{writeFile(t, filepath.Join(dir, "readonly.yml"), `version: 0.1
storage:
  filesystem:
    rootdirectory: `+root+`
  maintenance:
    readonly:
      enabled: true
http:
  addr: `+addr+`
`)}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := freeAddr(t)
			var env, args []string
			if c.env != nil {
				env = c.env(addr)
			}
			if c.args != nil {
				args = c.args(addr)
			}
			r := serve(t, dir, "http://"+addr, env, args...)
			pull(t, r.base, "alpine", "latest", img)

			code, body := pushBlob(t, r.base, "alpine", []byte("new layer"))
			if code != http.StatusMethodNotAllowed || errorCode(body) != "UNSUPPORTED" {
				t.Errorf("blob upload on a read-only registry: %d %s, want 405 UNSUPPORTED", code, body)
			}
			resp, body := do(t, http.MethodPut, r.base+"/v2/alpine/manifests/other", ociManifest, bytes.NewReader(img.manifest))
			if resp.StatusCode != http.StatusMethodNotAllowed || errorCode(body) != "UNSUPPORTED" {
				t.Errorf("manifest PUT on a read-only registry: %s %s, want 405 UNSUPPORTED", resp.Status, body)
			}
			resp, body = do(t, http.MethodDelete, r.base+"/v2/alpine/manifests/"+sha(img.manifest), "", nil)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("manifest DELETE on a read-only registry: %s %s, want 405", resp.Status, body)
			}
			pull(t, r.base, "alpine", "latest", img) // nothing changed
		})
	}
}

// Seed 003 ("Docker Registry – Docker Hub, at Home, for Free!") sets
// REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry in a compose
// file and backs up that directory with tar. The variable must win over the
// config file, and the data must land there in registry:2's layout.
func TestSeedRootDirectoryFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	fileRoot := filepath.Join(dir, "from-file")
	envRoot := filepath.Join(dir, "var", "lib", "registry")
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config(fileRoot))
	p := serve(t, dir, "http://"+addr, []string{
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + envRoot,
		"REGISTRY_HTTP_ADDR=" + addr,
	}, cfg)
	img := newImage("compose")
	push(t, p.base, "jgsqware/ubuntu-git", "latest", img)
	pull(t, p.base, "jgsqware/ubuntu-git", "latest", img)

	v2 := filepath.Join(envRoot, "docker", "registry", "v2")
	link, err := os.ReadFile(filepath.Join(v2, "repositories", "jgsqware", "ubuntu-git", "_manifests", "tags", "latest", "current", "link"))
	if err != nil || string(link) != sha(img.manifest) {
		t.Fatalf("tag link in the environment's root: %q, %v", link, err)
	}
	h := strings.TrimPrefix(sha(img.layer), "sha256:")
	data, err := os.ReadFile(filepath.Join(v2, "blobs", "sha256", h[:2], h, "data"))
	if err != nil || !bytes.Equal(data, img.layer) {
		t.Fatalf("layer data in the environment's root: %q, %v", data, err)
	}
	if _, err := os.Stat(fileRoot); !os.IsNotExist(err) {
		t.Errorf("the config file's root directory was used too: %v", err)
	}
}

// Seed 002 ("Private Docker Registry", a systemd unit) runs registry:2's
// image with -e REGISTRY_HTTP_ADDR=0.0.0.0:80 over its default config.yml,
// which says addr :5000. It also checks http.headers from that default
// config on every response, and that the access log shows no credentials.
func TestSeedHTTPAddrAndHeaders(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config(filepath.Join(dir, "data")))
	p := serve(t, dir, "http://"+addr, []string{"REGISTRY_HTTP_ADDR=" + addr}, cfg)

	const password = "Sup3r-secret-pw"
	for _, u := range []string{p.base + "/v2/", p.base + "/v2/nope/manifests/latest?token=query-secret"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.SetBasicAuth("admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff (http.headers)", u, got)
		}
		id := resp.Header.Get("X-Request-Id")
		if id == "" {
			t.Errorf("GET %s: no X-Request-Id", u)
		}
		waitLog(t, p, "request_id="+id)
	}
	log := p.log.String()
	creds := base64.StdEncoding.EncodeToString([]byte("admin:" + password))
	for _, secret := range []string{password, creds, "Basic", "query-secret"} {
		if strings.Contains(log, secret) {
			t.Errorf("berth's log contains %q:\n%s", secret, log)
		}
	}
	// Every access line names method, path, status, bytes, duration, user
	// and carries the service field from log.fields.
	sc := bufio.NewScanner(strings.NewReader(log))
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "msg=request ") {
			continue
		}
		n++
		for _, k := range []string{"request_id=", "method=", "path=", "status=", "bytes=", "duration=", "user=", "service=registry"} {
			if !strings.Contains(line, k) {
				t.Errorf("access line lacks %s: %s", k, line)
			}
		}
	}
	if n < 2 {
		t.Errorf("%d access lines, want at least 2:\n%s", n, log)
	}
}

// waitLog waits until berth's log contains s (the access line is written
// just after the response is sent).
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		log, changed := p.log.snapshot()
		if strings.Contains(log, s) {
			return
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("berth exited: %v", p.err)
		case <-timeout:
			t.Fatalf("berth's log has no %q:\n%s", s, log)
		}
	}
}

// http.prefix serves the API under a path, for a registry behind a proxy
// location such as nginx's "location /registry/".
func TestHTTPPrefix(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := writeFile(t, filepath.Join(dir, "config.yml"), `version: 0.1
storage:
  filesystem:
    rootdirectory: `+filepath.Join(dir, "data")+`
http:
  addr: `+addr+`
  prefix: /registry/
`)
	p := serve(t, dir, "http://"+addr+"/registry", nil, cfg)
	img := newImage("prefix")
	push(t, p.base, "team/app", "v1", img)
	pull(t, p.base, "team/app", "v1", img)

	resp, _ := do(t, http.MethodPost, p.base+"/v2/team/app/blobs/uploads/", "", nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/registry/v2/team/app/blobs/uploads/") {
		t.Errorf("upload Location %q is not under the prefix", loc)
	}
	resp, _ = do(t, http.MethodGet, "http://"+addr+"/v2/", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v2/ outside the prefix: %s, want 404", resp.Status)
	}
}

// With htpasswd auth (seed 001's REGISTRY_AUTH=htpasswd variables, the file
// made with `berth user add`), the access line names the authenticated user
// and nothing of the credentials reaches the log.
func TestAccessLogNamesTheUser(t *testing.T) {
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "users.htpasswd")
	const password = "Adm1n-pw-not-logged"
	if r := berth(t, dir, nil, password+"\n", "user", "add", "--file", htpasswd, "--password-stdin", "admin"); r.code != 0 {
		t.Fatalf("user add: %s", r.stderr)
	}
	addr := freeAddr(t)
	p := serve(t, dir, "http://"+addr, []string{
		"REGISTRY_HTTP_ADDR=" + addr,
		"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=" + filepath.Join(dir, "data"),
		"REGISTRY_AUTH=htpasswd",
		"REGISTRY_AUTH_HTPASSWD_REALM=Admin Registry Realm",
		"REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd,
	})
	req, _ := http.NewRequest(http.MethodGet, p.base+"/v2/_catalog", nil)
	req.SetBasicAuth("admin", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/_catalog as admin: %s", resp.Status)
	}
	id := resp.Header.Get("X-Request-Id")
	waitLog(t, p, "request_id="+id)
	var line string
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, "request_id="+id) && strings.Contains(l, "msg=request ") {
			line = l
		}
	}
	if !strings.Contains(line, "user=admin") || !strings.Contains(line, "path=/v2/_catalog") || !strings.Contains(line, "status=200") {
		t.Errorf("access line: %q", line)
	}
	creds := base64.StdEncoding.EncodeToString([]byte("admin:" + password))
	for _, s := range []string{password, creds, "Basic "} {
		if strings.Contains(p.log.String(), s) {
			t.Errorf("log contains %q:\n%s", s, p.log.String())
		}
	}
}
