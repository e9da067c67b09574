//go:build e2e

package tlstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testenv"
)

// netns is a network namespace a test creates for its own servers, joined
// to the root namespace by a veth pair on a /30 of 10.231.0.0/16.
//
// dockerd trusts every 127.0.0.0/8 registry without verifying its
// certificate (and falls back to plain HTTP), so a test of certificate
// verification through /etc/docker/certs.d needs the registry on another
// address. The servers run inside the namespace (`ip netns exec`) on IP;
// dockerd, in the root namespace, reaches them over the veth. No address
// of the machine itself is used.
type netns struct {
	Name   string
	HostIP string // the root namespace's end of the veth
	IP     string // the namespace's end, where its servers listen

	ip string // path of ip(8)
}

var netnsSeq atomic.Int32

// newNetns creates a namespace named berth-tls-PID-N with lo up and a veth
// pair to the root namespace, and removes both in t.Cleanup (register it
// before the servers that run inside, so that they stop first). Without
// ip(8) or the permission to use it the test is skipped, or fails when CI
// is set.
func newNetns(t *testing.T) *netns {
	t.Helper()
	ipBin := requireTool(t, "ip", "apt-get install iproute2")
	pid, seq := os.Getpid(), int(netnsSeq.Add(1))
	ns := &netns{Name: fmt.Sprintf("berth-tls-%d-%d", pid, seq), ip: ipBin}
	hostIf, nsIf := fmt.Sprintf("bt%dh%d", pid, seq), fmt.Sprintf("bt%dn%d", pid, seq)
	if len(hostIf) > 15 { // IFNAMSIZ-1
		hostIf, nsIf = fmt.Sprintf("bt%dh%d", pid%1000000, seq), fmt.Sprintf("bt%dn%d", pid%1000000, seq)
	}

	unavailable := func(step string, err error, out string) {
		t.Helper()
		msg := fmt.Sprintf("cannot set up the test's network namespace (%s: %v: %s); it needs iproute2 (apt-get install iproute2) and root (CAP_NET_ADMIN, CAP_SYS_ADMIN)", step, err, strings.TrimSpace(out))
		testenv.Missing(t, msg)
	}

	if out, err := ns.run("netns", "add", ns.Name); err != nil {
		unavailable("ip netns add "+ns.Name, err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace takes its veth end, and with it the pair,
		// once nothing runs inside; delete the pair explicitly anyway.
		ns.run("link", "del", hostIf)
		if out, err := ns.run("netns", "del", ns.Name); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})

	third, fourth, err := ns.pickSubnet(pid, seq)
	if err != nil {
		t.Fatal(err)
	}
	ns.HostIP = fmt.Sprintf("10.231.%d.%d", third, fourth+1)
	ns.IP = fmt.Sprintf("10.231.%d.%d", third, fourth+2)
	for _, step := range [][]string{
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf, "netns", ns.Name},
		{"addr", "add", ns.HostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
		{"-n", ns.Name, "addr", "add", ns.IP + "/30", "dev", nsIf},
		{"-n", ns.Name, "link", "set", nsIf, "up"},
	} {
		if out, err := ns.run(step...); err != nil {
			unavailable("ip "+strings.Join(step, " "), err, out)
		}
	}
	t.Logf("network namespace %s: %s (veth %s) <-> %s (veth %s)", ns.Name, ns.HostIP, hostIf, ns.IP, nsIf)
	return ns
}

// pickSubnet chooses the /30 10.231.third.fourth/30 that no interface
// address and no route in the root namespace uses yet (a leftover of a
// crashed run, another run at the same time), starting from a place
// derived from pid and seq so that concurrent runs differ.
func (ns *netns) pickSubnet(pid, seq int) (third, fourth int, err error) {
	const n30 = 1 << 14 // /30s in a /16
	start := (pid*61 + seq*7) % n30
	for i := 0; i < 256; i++ {
		n := (start + i) % n30
		third, fourth = n/64, n%64*4
		cidr := fmt.Sprintf("10.231.%d.%d/30", third, fourth)
		addrs, err := ns.run("-4", "-o", "addr", "show", "to", cidr)
		if err != nil {
			return 0, 0, fmt.Errorf("ip addr show to %s: %v: %s", cidr, err, addrs)
		}
		routes, err := ns.run("-4", "-o", "route", "show", "root", cidr)
		if err != nil {
			return 0, 0, fmt.Errorf("ip route show root %s: %v: %s", cidr, err, routes)
		}
		if strings.TrimSpace(addrs) == "" && strings.TrimSpace(routes) == "" {
			return third, fourth, nil
		}
	}
	return 0, 0, fmt.Errorf("no free /30 in 10.231.0.0/16 after 256 tries from 10.231.%d.%d", start/64, start%64*4)
}

func (ns *netns) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ns.ip, args...).CombinedOutput()
	return string(out), err
}

// Prefix runs a program inside the namespace: ip netns exec NAME, to be
// followed by the program and its arguments. ip(8) execs the program, so
// signals sent to the process reach it.
func (ns *netns) Prefix() []string { return []string{ns.ip, "netns", "exec", ns.Name} }

// Addr is IP:port, an address inside the namespace. The namespace is the
// test's own, so any port is free.
func (ns *netns) Addr(port int) string { return ns.IP + ":" + strconv.Itoa(port) }
