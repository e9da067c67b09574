//go:build e2e

package auth

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/test/harness"
)

// Seed 000: two customer lists (fpro, fent) may pull, neither may push;
// the owner pushes. Removing a customer from a file revokes them within
// seconds, without a restart.
func TestSeed000Customers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fpro, fent, owner := filepath.Join(dir, "fpro.passwd"), filepath.Join(dir, "fent.passwd"), filepath.Join(dir, "owner.passwd")
	writeHtpasswd(t, fpro, map[string]string{"foobar": "abc123", "procust": "pro-pw"})
	writeHtpasswd(t, fent, map[string]string{"entcust": "ent-pw"})
	writeHtpasswd(t, owner, map[string]string{"mike": "owner-pw"})
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    htpasswd:
      - {group: fpro, path: %s}
      - {group: fent, path: %s}
      - {group: owner, path: %s}
    policy:
      - group: owner
        actions: ["*"]
      - group: [fpro, fent]
        repository: example/*
        actions: [pull]
`, fpro, fent, owner)})
	// A Basic-auth registry (no anonymous access): /v2/ challenges.
	r := do(t, "GET", b.URL()+"/v2/", nil, nil)
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != `Basic realm="Registry Realm"` {
		t.Fatalf("/v2/: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	ref := b.Addr + "/example/faktory-ent:1.5.0"

	d := newDocker(t)
	d.importImage(ref, map[string]string{"faktory": "enterprise build"})
	d.fails("", "docker", "push", ref) // not logged in
	d.login(b.Addr, "mike", "owner-pw")
	d.push(ref)

	// Customers of both lists pull, and cannot push.
	for _, c := range []struct{ user, pass string }{{"foobar", "abc123"}, {"entcust", "ent-pw"}} {
		cd := newDocker(t)
		cd.login(b.Addr, c.user, c.pass)
		cd.pull(ref)
		own := b.Addr + "/example/faktory-ent:hacked-by-" + c.user
		cd.ok("", "docker", "tag", ref, own)
		cd.track(own)
		out := cd.fails("", "docker", "push", own)
		if !strings.Contains(out, "denied") {
			t.Errorf("%s push: want denied, got:\n%s", c.user, out)
		}
	}
	// A wrong password does not log in.
	bad := newDocker(t)
	bad.fails("wrong\n", "docker", "login", "-u", "foobar", "--password-stdin", b.Addr)

	// podman and skopeo as a customer.
	c := containersEnv(t, b.Addr)
	requireTool(t, "podman")
	requireTool(t, "skopeo")
	c.ok("", "podman", "pull", "--creds", "procust:pro-pw", ref)
	c.ok("", "skopeo", "inspect", "--tls-verify=false", "--creds", "procust:pro-pw", "docker://"+ref)
	c.fails("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", "procust:pro-pw", "--dest-creds", "procust:pro-pw", "docker://"+ref, "docker://"+b.Addr+"/example/copy:1")
	c.fails("", "skopeo", "inspect", "--tls-verify=false", "docker://"+ref) // anonymous

	// foobar stops paying: removed from fpro.passwd while berth runs.
	cd := newDocker(t)
	cd.login(b.Addr, "foobar", "abc123")
	writeHtpasswd(t, fpro, map[string]string{"procust": "pro-pw"})
	manifest := b.URL() + "/v2/example/faktory-ent/manifests/1.5.0"
	harness.WaitFor(t, 10*time.Second, "foobar to be refused", func() (bool, string) {
		r := do(t, "HEAD", manifest, basic("foobar", "abc123"), nil)
		return r.Status == 401, fmt.Sprintf("status %d", r.Status)
	})
	out := cd.pullFails(ref)
	if !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "denied") {
		t.Errorf("revoked customer pull: %s", out)
	}
	// The others are unaffected.
	if r := do(t, "HEAD", manifest, basic("procust", "pro-pw"), nil); r.Status != 200 {
		t.Errorf("remaining customer: %d", r.Status)
	}
	noSecretsLogged(t, b, "abc123", "pro-pw", "ent-pw", "owner-pw")
}

// Seeds 001 and 004: registry:2's own auth.htpasswd, from the config file
// and from REGISTRY_AUTH_* variables (any valid user may do anything), and
// seed 001's read-only maintenance mode.
func TestSeed001Htpasswd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.htpasswd")
	writeHtpasswd(t, users, map[string]string{"ci": "ci-pw", "dev": "dev-pw"})
	root := filepath.Join(t.TempDir(), "root")
	// Seed 004 spells the variables in lower case, which registry:2 (and
	// berth) ignore; the upper-case spelling of seed 001 is what works.
	b := harness.Start(t, harness.Options{Root: root, Env: []string{
		"REGISTRY_AUTH=htpasswd",
		"REGISTRY_AUTH_HTPASSWD_REALM=Admin Registry Realm",
		"REGISTRY_AUTH_HTPASSWD_PATH=" + users,
	}})
	r := do(t, "GET", b.URL()+"/v2/", nil, nil)
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != `Basic realm="Admin Registry Realm"` || r.ErrorCode() != "UNAUTHORIZED" {
		t.Fatalf("/v2/ anonymous: %d %q %s", r.Status, r.Header.Get("WWW-Authenticate"), r.Body)
	}
	if r := do(t, "GET", b.URL()+"/v2/", basic("ci", "wrong"), nil); r.Status != 401 || r.ErrorCode() != "UNAUTHORIZED" {
		t.Fatalf("/v2/ wrong password: %d %s", r.Status, r.Body)
	}
	ref := b.Addr + "/alpine:latest"
	d := newDocker(t)
	d.importImage(ref, map[string]string{"etc/alpine-release": "3.19.0\n"})
	d.login(b.Addr, "ci", "ci-pw")
	d.push(ref)
	d.pull(ref)
	if got := catalog(t, b, basic("dev", "dev-pw")); !slices.Equal(got, []string{"alpine"}) {
		t.Errorf("catalog: %q", got)
	}
	// podman and skopeo with the same htpasswd login.
	requireTool(t, "podman")
	requireTool(t, "skopeo")
	c := containersEnv(t, b.Addr)
	c.ok("dev-pw\n", "podman", "login", "--tls-verify=false", "-u", "dev", "--password-stdin", b.Addr)
	c.ok("", "podman", "pull", ref)
	c.ok("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+b.Addr+"/mirror/alpine:latest")
	b.Stop(t)

	// Seed 001's read-only registries: same storage, writes refused with
	// the spec's error, reads unaffected.
	ro := harness.Start(t, harness.Options{Root: root, Env: []string{
		"REGISTRY_STORAGE_MAINTENANCE_READONLY=enabled: true",
		"REGISTRY_AUTH=htpasswd",
		"REGISTRY_AUTH_HTPASSWD_REALM=Read Only Registry Realm",
		"REGISTRY_AUTH_HTPASSWD_PATH=" + users,
	}})
	roRef := ro.Addr + "/alpine:latest"
	rd := newDocker(t)
	rd.login(ro.Addr, "ci", "ci-pw")
	rd.pull(roRef)
	rd.ok("", "docker", "tag", roRef, ro.Addr+"/alpine:new")
	rd.track(ro.Addr + "/alpine:new")
	rd.fails("", "docker", "push", ro.Addr+"/alpine:new")
	up := do(t, "POST", ro.URL()+"/v2/alpine/blobs/uploads/", basic("ci", "ci-pw"), nil)
	if up.Status != http.StatusMethodNotAllowed || up.ErrorCode() != "UNSUPPORTED" {
		t.Errorf("upload in read-only mode: %d %s", up.Status, up.Body)
	}
	del := do(t, "DELETE", ro.URL()+"/v2/alpine/manifests/latest", basic("ci", "ci-pw"), nil)
	if del.Status != http.StatusMethodNotAllowed || del.ErrorCode() != "UNSUPPORTED" {
		t.Errorf("delete in read-only mode: %d %s", del.Status, del.Body)
	}
	// Authentication still comes first.
	if r := do(t, "POST", ro.URL()+"/v2/alpine/blobs/uploads/", nil, nil); r.Status != 401 {
		t.Errorf("anonymous upload in read-only mode: %d", r.Status)
	}
	noSecretsLogged(t, ro, "ci-pw", "dev-pw")
}

// Seed 002: anonymous users pull, administrators push, with docker, podman
// and skopeo alike (berth's token service: Basic auth cannot do this for
// docker).
func TestSeed002AnonymousPullAdminPush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	admins := filepath.Join(dir, "docker.registry.htpasswd")
	writeHtpasswd(t, admins, map[string]string{"testuser": "testpassword"})
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    htpasswd:
      - {group: admins, path: %s}
    policy:
      - group: admins
        actions: ["*"]
      - anonymous: true
        actions: [pull]
`, admins)})
	r := do(t, "GET", b.URL()+"/v2/", nil, nil)
	want := fmt.Sprintf(`Bearer realm="%s/auth/token",service="berth"`, b.URL())
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("/v2/: %d %q, want %q", r.Status, r.Header.Get("WWW-Authenticate"), want)
	}
	ref := b.Addr + "/ubuntu:16.04"

	// docker: push without login is refused; after login it works, and
	// the CLI keeps an identity token, not the password.
	d := newDocker(t)
	d.importImage(ref, map[string]string{"etc/issue": "Ubuntu 16.04\n"})
	out := d.fails("", "docker", "push", ref)
	if !strings.Contains(out, "denied") && !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Errorf("anonymous push: %s", out)
	}
	d.login(b.Addr, "testuser", "testpassword")
	entry := d.authEntry(b.Addr)
	if entry["identitytoken"] == "" || strings.Contains(entry["auth"], "dGVzdHBhc3N3b3Jk") {
		t.Errorf("docker stored %v; want an identity token and no password", entry)
	}
	d.push(ref)

	// Anonymous docker pull.
	anon := newDocker(t)
	anon.pull(ref)
	// Wrong password: docker login fails.
	anon.fails("nope\n", "docker", "login", "-u", "testuser", "--password-stdin", b.Addr)

	// podman and skopeo: anonymous pull, anonymous push refused, push
	// with credentials accepted.
	requireTool(t, "podman")
	requireTool(t, "skopeo")
	c := containersEnv(t, b.Addr)
	c.ok("", "podman", "pull", ref)
	c.ok("", "skopeo", "inspect", "--tls-verify=false", "docker://"+ref)
	podRef := b.Addr + "/podman/hello:1"
	podmanImage(t, c, podRef, map[string]string{"hello": "from podman"})
	c.fails("", "podman", "push", podRef)
	c.ok("", "podman", "push", "--creds", "testuser:testpassword", podRef)
	c.fails("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+b.Addr+"/copy/ubuntu:16.04")
	c.ok("", "skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", "testuser:testpassword",
		"docker://"+ref, "docker://"+b.Addr+"/copy/ubuntu:16.04")
	c.ok("testpassword\n", "podman", "login", "--tls-verify=false", "-u", "testuser", "--password-stdin", b.Addr)
	c.ok("", "podman", "push", podRef, b.Addr+"/podman/hello:2")

	// Anonymous callers list what they may pull.
	if got := catalog(t, b, nil); !slices.Equal(got, []string{"copy/ubuntu", "podman/hello", "ubuntu"}) {
		t.Errorf("anonymous catalog: %q", got)
	}
	noSecretsLogged(t, b, "testpassword", entry["identitytoken"])
}

// Seed 002 behind a TLS-terminating proxy: the realm follows
// X-Forwarded-Proto / X-Forwarded-Host, or http.host when set.
func TestRealmBehindProxy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	admins := filepath.Join(dir, "admins")
	writeHtpasswd(t, admins, map[string]string{"a": "b"})
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    htpasswd: [{group: admins, path: %s}]
    policy: [{anonymous: true, actions: [pull]}]
`, admins)})
	r := do(t, "GET", b.URL()+"/v2/", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}, nil)
	if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="https://registry.example.com/auth/token",service="berth"` {
		t.Errorf("behind a proxy: %q", got)
	}
	// (http.prefix is covered by internal/auth/gate's tests: the harness
	// waits for /v2/ at the root.)
	h := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`http:
  host: https://docker.example.org
berth:
  auth:
    htpasswd: [{group: admins, path: %s}]
    tokenservice: {service: example-registry}
`, admins)})
	r = do(t, "GET", h.URL()+"/v2/", nil, nil)
	if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="https://docker.example.org/auth/token",service="example-registry"` {
		t.Errorf("http.host: %d %q", r.Status, got)
	}
	if tok, tr := fetchToken(t, h.URL()+"/auth/token", basic("a", "b"), "example-registry", "repository:x:pull"); tok == "" {
		t.Errorf("token endpoint under the prefix: %d %s", tr.Status, tr.Body)
	}
}
