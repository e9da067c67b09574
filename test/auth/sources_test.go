//go:build e2e

package auth

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth/ldap/slapdtest"
	"github.com/berth-registry/berth/test/harness"
)

// LDAP: logins bind to a real slapd; groups come from the directory and
// drive the policy.
func TestLDAP(t *testing.T) {
	t.Parallel()
	srv := slapdtest.Start(t)
	srv.AddUser(t, "alice", "alice-ldap-pw")
	srv.AddUser(t, "bob", "bob-ldap-pw")
	srv.AddGroup(t, "registry-admins", "alice")
	srv.AddGroup(t, "developers", "alice", "bob")
	pwFile := filepath.Join(t.TempDir(), "bindpw")
	os.WriteFile(pwFile, []byte(slapdtest.AdminPassword+"\n"), 0o600)
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    ldap:
      url: %s
      binddn: %s
      bindpasswordfile: %s
      userbase: %s
      userfilter: (uid={username})
      groupbase: %s
      cachettl: 1s
    policy:
      - group: registry-admins
        actions: ["*"]
      - group: developers
        repository: ["team/*", "${account}/*"]
        actions: [pull, push]
    tokenservice: {}
`, srv.URL, slapdtest.AdminDN, pwFile, slapdtest.PeopleDN, slapdtest.GroupsDN)})

	ref := b.Addr + "/base/debian:12"
	d := newDocker(t)
	d.importImage(ref, map[string]string{"etc/debian_version": "12\n"})
	d.login(b.Addr, "alice", "alice-ldap-pw")
	d.push(ref)

	bd := newDocker(t)
	bd.fails("wrong\n", "docker", "login", "-u", "bob", "--password-stdin", b.Addr)
	bd.login(b.Addr, "bob", "bob-ldap-pw")
	mine := b.Addr + "/bob/app:1"
	bd.importImage(mine, map[string]string{"app": "bob's"})
	bd.push(mine)
	bd.pullFails(ref) // base/* is for admins only
	bd.ok("", "docker", "tag", mine, b.Addr+"/base/evil:1")
	bd.track(b.Addr + "/base/evil:1")
	bd.fails("", "docker", "push", b.Addr+"/base/evil:1")

	requireTool(t, "podman")
	c := containersEnv(t, b.Addr)
	c.ok("", "podman", "pull", "--creds", "bob:bob-ldap-pw", mine)
	c.fails("", "podman", "pull", "--creds", "bob:nope", mine)

	// Removed from the developers group in the directory: bob's next token
	// (after the login cache expires) carries nothing.
	srv.Delete(t, "cn=developers,"+slapdtest.GroupsDN)
	manifest := b.URL() + "/v2/bob/app/manifests/1"
	harness.WaitFor(t, 15*time.Second, "bob to lose access", func() (bool, string) {
		r := do(t, "HEAD", manifest, basic("bob", "bob-ldap-pw"), nil)
		return r.Status == 403, fmt.Sprintf("status %d", r.Status)
	})
	if got := catalog(t, b, basic("alice", "alice-ldap-pw")); !slices.Equal(got, []string{"base/debian", "bob/app"}) {
		t.Errorf("admin catalog: %q", got)
	}
	if got := catalog(t, b, basic("bob", "bob-ldap-pw")); len(got) != 0 {
		t.Errorf("bob's catalog: %q", got)
	}
	noSecretsLogged(t, b, "alice-ldap-pw", "bob-ldap-pw", slapdtest.AdminPassword)
}

// Robot tokens: created with `berth token create`, used by docker, podman
// and skopeo as a password, revoked while berth runs.
func TestRobotTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	admins := filepath.Join(dir, "admins")
	writeHtpasswd(t, admins, map[string]string{"root": "root-pw"})
	b := harness.Start(t, harness.Options{ExtraConfig: fmt.Sprintf(`berth:
  auth:
    htpasswd: [{group: admins, path: %s}]
    policy:
      - group: admins
        actions: ["*"]
      - group: ci
        repository: builds/*
        actions: [pull, push]
      - account: deploy
        actions: [pull]
    tokenservice: {}
`, admins)})
	cli := runner{t: t}
	bin := harness.Binary(t)
	secret := strings.TrimSpace(cli.ok("", bin, "token", "create", "ci-bot", "--group", "ci", "--note", "pipeline", "--config", b.ConfigPath))
	if !strings.HasPrefix(secret, "berth_") {
		t.Fatalf("token create printed %q", secret)
	}
	deploy := strings.TrimSpace(cli.ok("", bin, "token", "create", "deploy", "--expires", "1h", "--config", b.ConfigPath))
	list := cli.ok("", bin, "token", "list", "--config", b.ConfigPath)
	if !strings.Contains(list, "ci-bot") || !strings.Contains(list, "deploy") || strings.Contains(list, secret) {
		t.Errorf("token list:\n%s", list)
	}
	store, _ := os.ReadFile(filepath.Join(b.Root, "berth", "tokens.json"))
	if strings.Contains(string(store), secret) || strings.Contains(string(store), deploy) {
		t.Fatal("the token store holds a secret")
	}

	ref := b.Addr + "/builds/app:42"
	d := newDocker(t)
	d.importImage(ref, map[string]string{"app": "build 42"})
	harness.WaitFor(t, 10*time.Second, "berth to see the new tokens", func() (bool, string) {
		r := do(t, "GET", b.URL()+"/v2/", basic("ci-bot", secret), nil)
		return r.Status == 200, fmt.Sprintf("status %d", r.Status)
	})
	d.login(b.Addr, "ci-bot", secret)
	d.push(ref)
	d.ok("", "docker", "tag", ref, b.Addr+"/prod/app:42")
	d.track(b.Addr + "/prod/app:42")
	d.fails("", "docker", "push", b.Addr+"/prod/app:42")

	requireTool(t, "podman")
	requireTool(t, "skopeo")
	c := containersEnv(t, b.Addr)
	c.ok("", "podman", "pull", "--creds", "deploy:"+deploy, ref)
	c.ok("", "skopeo", "inspect", "--tls-verify=false", "--creds", "ci-bot:"+secret, "docker://"+ref)
	c.fails("", "skopeo", "inspect", "--tls-verify=false", "--creds", "deploy:"+secret, "docker://"+ref) // another robot's token

	// Revoked while berth runs: refused within about a second.
	cli.ok("", bin, "token", "revoke", "ci-bot", "--config", b.ConfigPath)
	harness.WaitFor(t, 10*time.Second, "the revoked token to be refused", func() (bool, string) {
		r := do(t, "GET", b.URL()+"/v2/", basic("ci-bot", secret), nil)
		return r.Status == 401, fmt.Sprintf("status %d", r.Status)
	})
	d.pullFails(ref)
	c.fails("", "skopeo", "inspect", "--tls-verify=false", "--creds", "ci-bot:"+secret, "docker://"+ref)
	c.ok("", "skopeo", "inspect", "--tls-verify=false", "--creds", "deploy:"+deploy, "docker://"+ref)
	noSecretsLogged(t, b, secret, deploy, "root-pw")
}
