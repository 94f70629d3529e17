package testnet

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Unusual names, so the root-namespace check below cannot hit a real device.
const (
	nameA = "pinetA0"
	nameB = "pinetB0"
)

// topo builds ns a <-veth-> ns b with IPv4/IPv6 addresses.
func topo(t *testing.T) (a, b *NS, la, lb Link) {
	t.Helper()
	a = NewNS(t, "a")
	b = NewNS(t, "b")
	la, lb = Veth(t, a, nameA, b, nameB)
	a.AddAddr(t, nameA, "10.99.0.1/24")
	b.AddAddr(t, nameB, "10.99.0.2/24")
	a.AddAddr(t, nameA, "fd99::1/64")
	b.AddAddr(t, nameB, "fd99::2/64")
	return a, b, la, lb
}

func TestTopology(t *testing.T) {
	RequirePrivileged(t)
	t.Parallel()
	a, b, la, lb := topo(t)

	if a.Name == b.Name || !strings.HasPrefix(a.Name, NSPrefix+"a-") {
		t.Fatalf("namespace names %q, %q: want unique, prefixed %q", a.Name, b.Name, NSPrefix)
	}
	if la.NS != a || lb.NS != b || la.Index == 0 || lb.Index == 0 || len(la.MAC) != 6 || len(lb.MAC) != 6 {
		t.Fatalf("bad links: %+v %+v", la, lb)
	}

	// Nothing leaked into the root namespace.
	for _, n := range []string{nameA, nameB} {
		if _, err := netlink.LinkByName(n); err == nil {
			t.Errorf("link %s exists in the root namespace", n)
		}
	}

	a.SetMTU(t, nameA, 1400)
	a.AddRoute(t, "10.100.0.0/16", "10.99.0.2", "")
	a.AddRoute(t, "default", "fd99::2", nameA)
	a.AddRoute(t, "10.101.0.0/24", "", nameA)
	a.AddNeigh(t, nameA, "10.99.0.2", lb.MAC)
	a.AddNeigh(t, nameA, "fd99::2", lb.MAC)

	h := a.Handle()
	l, err := h.LinkByName(nameA)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().MTU != 1400 || l.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("link %s: mtu %d flags %v, want 1400 and up", nameA, l.Attrs().MTU, l.Attrs().Flags)
	}
	if peer, err := b.Handle().LinkByName(nameB); err != nil || peer.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("peer %s in %s: %v, want up", nameB, b.Name, err)
	}

	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, ad := range addrs {
		have = append(have, ad.IPNet.String())
	}
	for _, want := range []string{"10.99.0.1/24", "fd99::1/64"} {
		if !contains(have, want) {
			t.Errorf("addresses %v: missing %s", have, want)
		}
	}

	// The kernel's route lookup picks the veth and the right gateway.
	for _, c := range []struct{ dst, gw string }{
		{"10.100.1.1", "10.99.0.2"},
		{"10.101.0.7", ""},
		{"2001:db8::1", "fd99::2"},
	} {
		routes, err := h.RouteGet(net.ParseIP(c.dst))
		if err != nil || len(routes) == 0 {
			t.Fatalf("RouteGet %s: %v %v", c.dst, routes, err)
		}
		r := routes[0]
		if r.LinkIndex != la.Index {
			t.Errorf("RouteGet %s: link index %d, want %d (%s)", c.dst, r.LinkIndex, la.Index, nameA)
		}
		if gotGw := ipString(r.Gw); gotGw != c.gw {
			t.Errorf("RouteGet %s: gateway %q, want %q", c.dst, gotGw, c.gw)
		}
	}

	neighs, err := h.NeighList(la.Index, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, n := range neighs {
		if (n.IP.String() == "10.99.0.2" || n.IP.String() == "fd99::2") &&
			n.State == netlink.NUD_PERMANENT && n.HardwareAddr.String() == lb.MAC.String() {
			found++
		}
	}
	if found != 2 {
		t.Errorf("permanent neighbours for 10.99.0.2 and fd99::2 -> %s: found %d in %v", lb.MAC, found, neighs)
	}

	// Veth within a single namespace also works.
	x, y := Veth(t, b, "inner0", b, "inner1")
	if x.NS != b || y.NS != b || x.Index == y.Index {
		t.Errorf("same-namespace veth: %v %v", x, y)
	}
}

func TestDo(t *testing.T) {
	RequirePrivileged(t)
	t.Parallel()
	a, _, la, _ := topo(t)

	// Pin this goroutine so "the caller's namespace" is well defined.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	err = a.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(a.NsHandle()) {
			return errors.New("Do: not running in the namespace")
		}
		l, err := netlink.LinkByName(nameA) // default handle = this thread's netns
		if err != nil {
			return err
		}
		if l.Attrs().Index != la.Index {
			return errors.New("Do: wrong link index")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Fatal("caller's thread changed namespace")
	}

	sentinel := errors.New("sentinel")
	if err := a.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do error = %v, want sentinel", err)
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = a.Do(func() error { panic("boom") })
	}()

	// Goexit inside fn (e.g. a stray t.FailNow) must not hang Do.
	if err := a.Do(func() error { runtime.Goexit(); return nil }); err != nil {
		t.Errorf("Do with Goexit: %v", err)
	}
}

func TestSysctlAndRun(t *testing.T) {
	RequirePrivileged(t)
	t.Parallel()
	a, _, _, _ := topo(t)

	const v4 = "net.ipv4.conf.all.forwarding"
	const v6 = "net/ipv6/conf/all/forwarding"
	rootV4, err := os.ReadFile(sysctlPath(v4))
	if err != nil {
		t.Fatal(err)
	}

	a.Sysctl(t, v4, "1")
	a.Sysctl(t, v6, "1")
	if got := a.GetSysctl(t, v4); got != "1" {
		t.Errorf("%s in %s = %q, want 1", v4, a.Name, got)
	}
	if got := a.GetSysctl(t, "net.ipv6.conf.all.forwarding"); got != "1" {
		t.Errorf("ipv6 forwarding in %s = %q, want 1", a.Name, got)
	}
	if now, _ := os.ReadFile(sysctlPath(v4)); string(now) != string(rootV4) {
		t.Errorf("root namespace %s changed from %q to %q", v4, rootV4, now)
	}

	out, err := a.Run("cat", "/proc/sys/net/ipv4/conf/all/forwarding")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("Run cat forwarding: %q, %v", out, err)
	}
	out, err = a.Run("ip", "-o", "link", "show")
	if err != nil || !strings.Contains(out, nameA) {
		t.Errorf("Run ip link show: %q, %v; want %s listed", out, err, nameA)
	}
	if _, err := a.Run("false"); err == nil {
		t.Error("Run false: want error")
	}
}

func TestCleanup(t *testing.T) {
	RequirePrivileged(t)
	var names []string
	t.Run("build", func(t *testing.T) {
		a, b, _, _ := topo(t)
		names = []string{a.Name, b.Name}
	})
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("/run/netns/%s still exists (%v)", n, err)
		}
		if strings.Contains(string(out), n) {
			t.Errorf("ip netns list still shows %s", n)
		}
	}
}

func TestVethRejectsRootNamespace(t *testing.T) {
	RequirePrivileged(t)
	ft := &fakeTB{TB: t, stop: true}
	func() {
		defer func() { _ = recover() }()
		Veth(ft, nil, "x0", nil, "x1")
	}()
	if !ft.fatal {
		t.Error("Veth with nil namespaces did not fail")
	}
}

func TestMountBPFFS(t *testing.T) {
	RequirePrivileged(t)
	if err := MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	if err := MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	if !isBPFFS(BPFFSPath) {
		t.Fatalf("%s is not a bpffs", BPFFSPath)
	}

	// Exercise the actual mount path on a scratch directory.
	dir := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	for i := 0; i < 2; i++ {
		if err := mountBPFFS(dir); err != nil {
			t.Fatal(err)
		}
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(info), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%s mounted %d times, want 1", dir, n)
	}
}

func TestRequirePrivilegedCI(t *testing.T) {
	denied := errors.New("no caps")
	for _, c := range []struct {
		ci               string
		err              error
		wantSkip, wantFa bool
	}{
		{"", nil, false, false},
		{"true", nil, false, false},
		{"", denied, true, false},
		{"false", denied, true, false},
		{"true", denied, false, true},
	} {
		t.Setenv("CI", c.ci)
		ft := &fakeTB{TB: t}
		requirePrivileged(ft, c.err)
		if ft.skip != c.wantSkip || ft.fatal != c.wantFa {
			t.Errorf("CI=%q err=%v: skip=%v fatal=%v, want skip=%v fatal=%v",
				c.ci, c.err, ft.skip, ft.fatal, c.wantSkip, c.wantFa)
		}
	}
}

// fakeTB records Skip/Fatal instead of acting on them.
type fakeTB struct {
	testing.TB
	skip, fatal bool
	stop        bool // panic in Fatalf, to stop the code under test like t.FailNow would
}

func (f *fakeTB) Helper()              {}
func (f *fakeTB) Skipf(string, ...any) { f.skip = true }
func (f *fakeTB) Fatalf(string, ...any) {
	f.fatal = true
	if f.stop {
		panic("fakeTB: Fatalf")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
