package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every broken configuration stops `berth serve`, `berth config check` and
// `berth CONFIG.yml` with a non-zero status and an error on stderr naming the file, the
// line and the key (or the variable).
func TestBadConfigurations(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string // "" means the file does not exist
		env     []string
		want    []string // substrings of stderr
	}{
		{
			name: "unknown key",
			content: `version: 0.1
storage:
  filesystem:
    rootdirectory: /tmp/unused
http:
  addr: 127.0.0.1:0
  adr: :5001
`,
			want: []string{"unknown-key.yml:7:", `"http.adr"`, `did you mean "http.addr"`},
		},
		{
			name: "malformed yaml",
			content: `version: 0.1
http:
  addr: [127.0.0.1:0
storage:
`,
			want: []string{"malformed-yaml.yml:", "invalid YAML"},
		},
		{
			name: "wrong type",
			content: `version: 0.1
storage:
  delete:
    enabled: sometimes
`,
			want: []string{"wrong-type.yml:4:", "storage.delete.enabled", "boolean"},
		},
		{
			name: "wrong type of section",
			content: `version: 0.1
http:
  headers: nosniff
`,
			want: []string{"wrong-type-of-section.yml:3:", "http.headers", "mapping"},
		},
		{
			name: "missing file",
			want: []string{"missing-file.yml", "not found"},
		},
		{
			name:    "unknown variable",
			content: "version: 0.1\n",
			env:     []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLD=true"},
			want:    []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLD", "storage.maintenance.readonly.enabld"},
		},
		{
			// Debian's docker-registry package ships this: the path of
			// the htpasswd file is a directory.
			name: "htpasswd path is a directory",
			content: `version: 0.1
auth:
  htpasswd:
    realm: basic-realm
    path: ` + dir + `
`,
			want: []string{"is a directory"},
		},
		{
			// A pull-through cache berth cannot be yet: refused rather
			// than run as an empty registry that accepts pushes.
			name:    "proxy",
			content: "version: 0.1\n",
			env:     []string{"REGISTRY_PROXY_REMOTEURL=https://registry-1.docker.io"},
			want:    []string{"proxy is not supported"},
		},
		{
			name:    "variable of the wrong type",
			content: "version: 0.1\n",
			env:     []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY=yes please"},
			want:    []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY", "storage.maintenance.readonly"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yml")
			if c.content != "" {
				writeFile(t, path, c.content)
			}
			// "berth CONFIG.yml" is "berth serve CONFIG.yml", as with
			// registry:2's image entrypoint.
			for _, args := range [][]string{{"serve", path}, {"config", "check", path}, {path}} {
				r := berth(t, dir, c.env, "", args...)
				if r.code == 0 {
					t.Errorf("berth %s: exit 0, want non-zero; stderr:\n%s", strings.Join(args, " "), r.stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("berth %s: stderr lacks %q:\n%s", args[0], w, r.stderr)
					}
				}
				if r.stdout != "" {
					t.Errorf("berth %s: wrote to stdout on error: %q", args[0], r.stdout)
				}
			}
		})
	}
}

// config check prints the effective configuration (file, environment,
// defaults) with secrets redacted, and lists the warnings.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "config.yml"), registry2Config("/var/lib/registry"))
	env := []string{
		"REGISTRY_HTTP_SECRET=hlyrehbrvgszd",             // seed 001
		"REGISTRY_STORAGE_DELETE_ENABLED=true",           // a common addition
		"REGISTRY_HTTP_ADDR=0.0.0.0:80",                  // seed 002
		"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=inmemory", // seed 004
	}
	r := berth(t, dir, env, "", "config", "check", path)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		"rootdirectory: /var/lib/registry", // from the file
		"addr: 0.0.0.0:80",                 // from the environment
		"secret: <redacted>",
		"X-Content-Type-Options",
		"draintimeout: 0s", // a default
		"enabled: true",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "hlyrehbrvgszd") {
		t.Errorf("the secret is shown:\n%s\n%s", r.stdout, r.stderr)
	}
	for _, want := range []string{
		"warning: REGISTRY_HTTP_SECRET: http.secret",
		"storage.cache: registry:2 setting not implemented",
		"valid, with 2 warnings",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "health") { // registry:2's stock health check is implemented
		t.Errorf("health warned about:\n%s", r.stderr)
	}

	q := berth(t, dir, env, "", "config", "check", "--quiet", path)
	if q.code != 0 || q.stdout != "" || !strings.Contains(q.stderr, "valid") {
		t.Errorf("--quiet: exit %d, stdout %q, stderr %q", q.code, q.stdout, q.stderr)
	}

	// REGISTRY_CONFIGURATION_PATH names the file when no argument does.
	e := berth(t, dir, append(env, "REGISTRY_CONFIGURATION_PATH="+path), "", "config", "check")
	if e.code != 0 || !strings.Contains(e.stdout, "rootdirectory: /var/lib/registry") {
		t.Errorf("with REGISTRY_CONFIGURATION_PATH: exit %d\n%s\n%s", e.code, e.stdout, e.stderr)
	}

}
