//go:build e2e

package tlstest

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	testca "github.com/berth-registry/berth/internal/tlsconf/tlstest"
	"github.com/berth-registry/berth/test/harness"
)

// htpasswd returns an htpasswd line with a bcrypt hash ($2y$, which nginx
// (through libcrypt) and Apache both read).
func htpasswd(t *testing.T, user, password string) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(user + ":$2y$" + strings.TrimPrefix(string(h), "$2a$") + "\n")
}

// worldReadableDir is a temporary directory that the servers' worker users
// (www-data) can read, unlike t.TempDir().
func worldReadableDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// uploadLocation starts a blob upload through base (a proxy) the way
// docker does and returns the Location header berth handed back.
func uploadLocation(t *testing.T, client *http.Client, base, repo string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	req.Header.Set("User-Agent", "docker/20.10.24 go/go1.19.8") // seed 002 refuses "Go *" agents
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST blob upload through %s: %s", base, resp.Status)
	}
	return resp.Header.Get("Location")
}

// TestNginx runs nginx in front of berth with the seed articles'
// configurations and pushes and pulls through it with docker:
//
//   - seed 002's location block verbatim (client_max_body_size 0, chunked
//     transfer encoding, X-Forwarded-Proto, basic auth on writes via
//     limit_except): anonymous pulls work;
//   - the same block without limit_except (access control left to berth):
//     pushes and pulls work, with an 8 MiB layer (nginx's default body
//     limit is 1 MiB);
//   - seed 004's server block: TLS at nginx with basic auth on everything,
//     berth behind it with http.host set to the public https URL: docker
//     login, push and pull over TLS, with absolute Location URLs. dockerd
//     verifies certificates only off 127.0.0.0/8, so this nginx and its
//     berth run in the test's own network namespace (a second nginx
//     process), which dockerd reaches over a veth at 10.231.X.2.
func TestNginx(t *testing.T) {
	nginx := requireTool(t, "nginx", "apt-get install nginx")
	d := requireDocker(t)
	ns := newNetns(t)

	plain := harness.Start(t, harness.Options{Name: "berth-behind-nginx"})
	tlsPort := ns.Addr(8443)
	public := "https://" + tlsPort
	behindDir, behindAddr := t.TempDir(), "127.0.0.1:5000" // the namespace's loopback
	behindTLS := startBerthWith(t, behindDir, behindAddr,
		berthConfig(behindDir, behindAddr, "  host: "+public+"\n", ""), berthOptions{Prefix: ns.Prefix()})

	dir := worldReadableDir(t, "berth-nginx-")
	testca.WriteFile(t, filepath.Join(dir, "docker.registry.htpasswd"), htpasswd(t, "testuser", "testpassword"))
	c := testca.NewCA(t, "nginx test CA")
	cp, kp, _ := c.Issue(t, testca.Leaf{CN: ns.IP, Names: []string{ns.IP}})
	testca.WriteFile(t, filepath.Join(dir, "fullchain.pem"), cp)
	testca.WriteFile(t, filepath.Join(dir, "privkey.pem"), kp)
	seed002, open := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")

	// seed 002's location block, as published (proxy_pass pointed at berth).
	location := func(withAuth bool) string {
		auth := `
      # To add basic authentication to v2 use auth_basic setting.
      limit_except GET HEAD {
        auth_basic "Registry realm";
        auth_basic_user_file ` + dir + `/docker.registry.htpasswd;
      }
`
		if !withAuth {
			auth = ""
		}
		return `
   location ^~ /v2/ {

      proxy_pass http://` + plain.Addr + `/v2/;
      proxy_set_header X-Nginx-Proxy true;
      client_max_body_size 0; # disable any limits to avoid HTTP 413 for large image uploads

      # required to avoid HTTP 411: see Issue #1486 (https://github.com/moby/moby/issues/1486)
      chunked_transfer_encoding on;

      # Do not allow connections from docker 1.5 and earlier
      # docker pre-1.6.0 did not properly set the user agent on ping, catch
      # "Go *" user agents
      if ($http_user_agent ~ "^(docker\/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$" ) {
        return 404;
      }
` + auth + `

      ## If $docker_distribution_api_version is empty, the header is not added.
      ## See the map directive above where this variable is defined.
      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;

      proxy_set_header  Host              $http_host;   # required for docker client's sake
      proxy_set_header  X-Real-IP         $remote_addr; # pass on real client's IP
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;
  }
`
	}
	// Two nginx processes: this one in the root namespace and, in the
	// test's namespace, one for seed 004; each with its own pid file,
	// logs and temporary files in run.
	header := func(run string) string {
		return `user root;
worker_processes 1;
daemon off;
pid ` + run + `/nginx.pid;
error_log ` + run + `/error.log info;
events { worker_connections 256; }
http {
  access_log ` + run + `/access.log;
  client_body_temp_path ` + run + `/client_body;
  proxy_temp_path ` + run + `/proxy;
  fastcgi_temp_path ` + run + `/fastcgi;
  uwsgi_temp_path ` + run + `/uwsgi;
  scgi_temp_path ` + run + `/scgi;

   # This should go into the http {} part of the Nginx configuration
   ## Set a variable to help us decide if we need to add the
   ## 'Docker-Distribution-Api-Version' header.
   ## The registry always sets this header.
   ## In the case of nginx performing auth, the header is unset
   ## since nginx is auth-ing before proxying.
   map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
     '' 'registry/2.0';
   }
`
	}
	nsRun := filepath.Join(dir, "netns")
	if err := os.MkdirAll(nsRun, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := header(dir) + `
  server {
    listen ` + seed002 + `;
` + location(true) + `
  }
  server {
    listen ` + open + `;
` + location(false) + `
  }
}
`
	nsConf := header(nsRun) + `
  # seed 004 (certbot's include and dhparam left out; "ssl on" is obsolete).
  # client_max_body_size 0 is not in the article: without it nginx answers
  # 413 to any layer over 1 MiB, with registry:2 as with berth.
  server {
    server_name ` + ns.IP + `;
    listen ` + tlsPort + ` ssl;
    client_max_body_size 0;

    add_header Docker-Distribution-Api-Version: registry/2.0 always;

    ssl_certificate ` + dir + `/fullchain.pem;
    ssl_certificate_key ` + dir + `/privkey.pem;

    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Original-URI $request_uri;
    proxy_set_header Docker-Distribution-Api-Version registry/2.0;

    location / {
        auth_basic "Restricted";
        auth_basic_user_file ` + dir + `/docker.registry.htpasswd;

        proxy_read_timeout 900;
        proxy_pass http://localhost:` + portOf(behindTLS.Addr) + `;
    }
  }
}
`
	confPath := testca.WriteFile(t, filepath.Join(dir, "nginx.conf"), []byte(conf))
	nsConfPath := testca.WriteFile(t, filepath.Join(nsRun, "nginx.conf"), []byte(nsConf))
	// ip netns exec NAME nginx ARGS...
	inNS := func(args ...string) []string { return append(append(ns.Prefix(), nginx), args...) }
	for _, argv := range [][]string{{nginx, "-t", "-c", confPath}, inNS("-t", "-c", nsConfPath)} {
		if out, err := runCmd(argv[0], argv[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	p := startProc(t, "nginx", filepath.Join(dir, "nginx.log"), nil, nginx, "-c", confPath)
	nsArgv := inNS("-c", nsConfPath)
	pNS := startProc(t, "nginx in "+ns.Name, filepath.Join(nsRun, "nginx.log"), nil, nsArgv[0], nsArgv[1:]...)
	for _, a := range []string{seed002, open} {
		p.WaitListening(t, a)
	}
	pNS.WaitListening(t, tlsPort) // from the root namespace, as dockerd connects
	t.Cleanup(func() {
		if t.Failed() {
			for _, run := range []string{dir, nsRun} {
				data, _ := os.ReadFile(filepath.Join(run, "error.log"))
				t.Logf("nginx error.log (%s):\n%s", run, harness.Tail(string(data), 40))
			}
		}
	})

	// Locations are relative, so they stay on the proxy.
	if loc := uploadLocation(t, http.DefaultClient, "http://"+open, "proxy/loc"); !strings.HasPrefix(loc, "/v2/proxy/loc/blobs/uploads/") {
		t.Errorf("Location through nginx = %q, want a relative /v2/... URL", loc)
	}

	t.Run("seed 002 without limit_except: push and pull", func(t *testing.T) {
		d := d.with(t)
		ref := open + "/nginx/big:1"
		d.pushPull(ref, d.importImage(ref, 8<<20, 3))
	})
	t.Run("seed 002 verbatim: anonymous pull", func(t *testing.T) {
		d := d.with(t)
		ref := open + "/nginx/pull:1"
		id := d.importImage(ref, 1<<20, 4)
		d.must("push", ref)
		// The same repository through the seed's server, which asks for a
		// password only on writes.
		seedRef := seed002 + "/nginx/pull:1"
		d.must("pull", seedRef)
		t.Cleanup(func() { d.run("rmi", "-f", seedRef) })
		if got := strings.TrimSpace(d.must("image", "inspect", "--format", "{{.Id}}", seedRef)); got != id {
			t.Errorf("pulled %s, pushed %s", got, id)
		}
		// docker never sends the password for the writes: /v2/ does not
		// ask for one (registry:2 behind this block behaves the same).
		d.must("tag", ref, seedRef)
		if out, err := d.run("push", seedRef); err == nil {
			t.Logf("push through seed 002's limit_except block unexpectedly worked:\n%s", out)
		} else {
			t.Logf("push through seed 002's limit_except block is refused by nginx, as with registry:2:\n%s", out)
		}
	})
	t.Run("seed 004: TLS and basic auth at nginx, http.host", func(t *testing.T) {
		d := d.with(t)
		certsD(t, tlsPort, map[string][]byte{"ca.crt": c.PEM()})
		d.login(tlsPort, "testuser", "testpassword")
		ref := tlsPort + "/nginx/tls:1"
		d.pushPull(ref, d.importImage(ref, 2<<20, 5))
		// berth built absolute URLs from http.host: the public https URL.
		hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool()}}}
		req, _ := http.NewRequest("POST", public+"/v2/nginx/tls/blobs/uploads/", nil)
		req.SetBasicAuth("testuser", "testpassword")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, public+"/v2/nginx/tls/blobs/uploads/") {
			t.Errorf("Location = %q, want under %s", loc, public)
		}
	})
}

// TestApache runs Apache httpd in front of berth with seed 000's setup
// (a2enmod headers proxy proxy_http; ProxyPass /v2; basic auth from two
// htpasswd files through AuthnProviderAlias), with the ProxyPass lines
// alone, and with a read-only variant that works on Apache 2.4, and pushes
// and pulls through them with docker.
//
// Seed 000's <Limit POST PUT DELETE PATCH> "Deny from all" does not make
// the registry read-only, with registry:2 or berth behind it: under "Order
// deny,allow" the "Allow from all" beside it wins. Logged-in users can
// push. docs/behind-a-proxy.md gives the 2.4 way (<RequireAll> with
// Require valid-user and Require method GET HEAD), tested here as the
// read-only host.
func TestApache(t *testing.T) {
	apache := requireTool(t, "apache2", "apt-get install apache2")
	d := requireDocker(t)
	berth := harness.Start(t, harness.Options{Name: "berth-behind-apache"})
	dir := worldReadableDir(t, "berth-apache-")
	testca.WriteFile(t, filepath.Join(dir, "fpro.passwd"), htpasswd(t, "foobar", "abc123"))
	testca.WriteFile(t, filepath.Join(dir, "fent.passwd"), htpasswd(t, "bigco", "s3cret"))
	seed000, open, readOnly := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	mods := "/usr/lib/apache2/modules/"
	var load strings.Builder
	for _, m := range []string{"mpm_event", "authn_core", "authn_file", "auth_basic", "authz_core", "authz_user", "access_compat", "headers", "proxy", "proxy_http"} {
		load.WriteString("LoadModule " + m + "_module " + mods + "mod_" + m + ".so\n")
	}
	backend := "http://localhost:" + portOf(berth.Addr) + "/v2"
	conf := `ServerRoot ` + dir + `
DefaultRuntimeDir ` + dir + `
PidFile ` + dir + `/httpd.pid
ErrorLog ` + dir + `/error.log
LogLevel warn
LogFormat "%h %u \"%r\" %>s %b" common
CustomLog ` + dir + `/access.log common
ServerName 127.0.0.1
User www-data
Group www-data
` + load.String() + `
Listen ` + seed000 + `
Listen ` + open + `
Listen ` + readOnly + `

# sites-enabled/auth.conf
<AuthnProviderAlias file fpro>
	AuthUserFile "` + dir + `/fpro.passwd"
</AuthnProviderAlias>

<AuthnProviderAlias file fent>
	AuthUserFile "` + dir + `/fent.passwd"
</AuthnProviderAlias>

# sites-enabled/registry.example.com.conf
<VirtualHost ` + seed000 + `>
  ServerName registry.example.com

  ProxyPass        /v2 ` + backend + `
  ProxyPassReverse /v2 ` + backend + `

  <Location /v2>
    Order deny,allow
    Allow from all
    AuthName "Registry Authentication"
    AuthType basic
    AuthBasicProvider fpro fent
    Require valid-user

    <Limit POST PUT DELETE PATCH>
      Deny from all
    </Limit>
  </Location>
</VirtualHost>

<VirtualHost ` + open + `>
  ProxyPass        /v2 ` + backend + `
  ProxyPassReverse /v2 ` + backend + `
</VirtualHost>

<VirtualHost ` + readOnly + `>
  ProxyPass        /v2 ` + backend + `
  ProxyPassReverse /v2 ` + backend + `

  <Location /v2>
    AuthName "Registry Authentication"
    AuthType basic
    AuthBasicProvider fpro fent
    <RequireAll>
      Require valid-user
      Require method GET HEAD
    </RequireAll>
  </Location>
</VirtualHost>
`
	confPath := testca.WriteFile(t, filepath.Join(dir, "apache2.conf"), []byte(conf))
	if out, err := runCmd(apache, "-f", confPath, "-t"); err != nil {
		t.Fatalf("apache2 -t: %v\n%s", err, out)
	}
	p := startProc(t, "apache2", filepath.Join(dir, "apache2.log"), nil, apache, "-f", confPath, "-DFOREGROUND")
	for _, a := range []string{seed000, open, readOnly} {
		p.WaitListening(t, a)
	}
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("apache error.log:\n%s", harness.Tail(string(data), 40))
		}
	})

	if loc := uploadLocation(t, http.DefaultClient, "http://"+open, "proxy/loc"); !strings.HasPrefix(loc, "/v2/proxy/loc/blobs/uploads/") {
		t.Errorf("Location through Apache = %q, want a relative /v2/... URL", loc)
	}

	t.Run("ProxyPass only: push and pull", func(t *testing.T) {
		d := d.with(t)
		ref := open + "/apache/big:1"
		d.pushPull(ref, d.importImage(ref, 8<<20, 6))
	})
	t.Run("seed 000: log in, pull and push", func(t *testing.T) {
		d := d.with(t)
		ref := seed000 + "/example/faktory:1.5.0"
		id := d.importImage(ref, 1<<20, 7)
		if out, err := d.run("push", ref); err == nil {
			t.Fatalf("anonymous push through seed 000 worked:\n%s", out)
		}
		d.login(seed000, "foobar", "abc123") // from the fpro file
		d.pushPull(ref, id)
	})
	t.Run("read-only variant: customers pull, the publisher pushes past Apache", func(t *testing.T) {
		d := d.with(t)
		// "Use an SSH tunnel to bypass Apache": push to berth directly.
		direct := berth.Addr + "/example/worker:1.0"
		id := d.importImage(direct, 1<<20, 8)
		d.must("push", direct)

		ref := readOnly + "/example/worker:1.0"
		if out, err := d.run("pull", ref); err == nil {
			t.Fatalf("anonymous pull through the read-only host worked:\n%s", out)
		}
		d.login(readOnly, "bigco", "s3cret") // from the fent file
		d.must("pull", ref)
		t.Cleanup(func() { d.run("rmi", "-f", ref) })
		if got := strings.TrimSpace(d.must("image", "inspect", "--format", "{{.Id}}", ref)); got != id {
			t.Errorf("pulled %s, pushed %s", got, id)
		}
		d.must("tag", direct, readOnly+"/example/worker:1.1")
		t.Cleanup(func() { d.run("rmi", "-f", readOnly+"/example/worker:1.1") })
		out, err := d.run("push", readOnly+"/example/worker:1.1")
		if err == nil {
			t.Errorf("push through the read-only host worked:\n%s", out)
		}
		t.Logf("push through the read-only host refused:\n%s", out)
	})
}

func runCmd(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
