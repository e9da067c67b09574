// Package slapdtest runs a private OpenLDAP slapd on 127.0.0.1 for tests:
// its own config, database and port under a temp dir, stopped at cleanup.
// Without slapd installed, tests are skipped, or fail when CI is set.
// Install it with: apt-get install slapd ldap-utils (see TESTING.md).
package slapdtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/berth-registry/berth/internal/testenv"
)

// Directory layout of the test server.
const (
	BaseDN        = "dc=example,dc=org"
	AdminDN       = "cn=admin,dc=example,dc=org"
	AdminPassword = "adminpw"
	PeopleDN      = "ou=people,dc=example,dc=org"
	GroupsDN      = "ou=groups,dc=example,dc=org"
)

// Server is a running slapd.
type Server struct {
	URL string
	Dir string
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Binary finds slapd, skipping the test (failing under CI) if absent.
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"slapd", "/usr/sbin/slapd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "slapd not found: install it with `apt-get install -y slapd ldap-utils` (preseed slapd/password1, slapd/password2, slapd/domain)"
	testenv.Missing(t, msg)
	return ""
}

// Start runs slapd with an empty tree: the base, ou=people and ou=groups.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	modpath := "/usr/lib/ldap"
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath %[2]s
moduleload back_mdb
database mdb
maxsize 10485760
suffix "%[3]s"
rootdn "%[4]s"
rootpw %[5]s
directory %[1]s/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
`, dir, modpath, BaseDN, AdminDN, AdminPassword)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		url := "ldap://127.0.0.1:" + strconv.Itoa(port)
		log := &bytes.Buffer{}
		// -d 0 keeps slapd in the foreground, so it is our child.
		cmd := exec.Command(bin, "-f", confPath, "-h", url+"/", "-d", "0")
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		s := &Server{URL: url, Dir: dir, cmd: cmd, log: log}
		if err := waitReady(url, done, 30*time.Second); err != nil {
			cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%v\nslapd output:\n%s", err, log.String())
			continue
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
		s.Add(t, BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
		s.Add(t, PeopleDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
		s.Add(t, GroupsDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}})
		return s
	}
	t.Fatalf("starting slapd: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(url string, done chan error, d time.Duration) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := goldap.DialURL(url)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd did not answer on %s within %v: %v", url, d, err)
		}
		select {
		case err := <-done:
			return fmt.Errorf("slapd exited: %v", err)
		case <-tick.C:
		}
	}
}

// Admin connects bound as the root DN.
func (s *Server) Admin(t testing.TB) *goldap.Conn {
	t.Helper()
	c, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// Add creates an entry.
func (s *Server) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	req := goldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	if err := c.Add(req); err != nil {
		t.Fatalf("ldap add %s: %v", dn, err)
	}
}

// Delete removes an entry.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	if err := c.Del(goldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("ldap delete %s: %v", dn, err)
	}
}

// UserDN is the DN AddUser gives uid.
func UserDN(uid string) string { return "uid=" + uid + "," + PeopleDN }

// AddUser creates uid with password under ou=people.
func (s *Server) AddUser(t testing.TB, uid, password string) string {
	t.Helper()
	dn := UserDN(uid)
	s.Add(t, dn, map[string][]string{
		"objectClass":  {"inetOrgPerson"},
		"uid":          {uid},
		"cn":           {uid},
		"sn":           {uid},
		"userPassword": {password},
	})
	return dn
}

// AddGroup creates a groupOfNames cn=name under ou=groups with members
// (user ids).
func (s *Server) AddGroup(t testing.TB, name string, members ...string) {
	t.Helper()
	var dns []string
	for _, m := range members {
		dns = append(dns, UserDN(m))
	}
	s.Add(t, "cn="+name+","+GroupsDN, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {name}, "member": dns})
}

// AddPosixGroup creates a posixGroup cn=name with memberUid entries.
func (s *Server) AddPosixGroup(t testing.TB, name string, gid int, members ...string) {
	t.Helper()
	s.Add(t, "cn="+name+","+GroupsDN, map[string][]string{"objectClass": {"posixGroup"}, "cn": {name},
		"gidNumber": {strconv.Itoa(gid)}, "memberUid": members})
}
