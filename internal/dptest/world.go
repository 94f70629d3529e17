// Package dptest is the datapath's test fixture: a namespace topology
// whose routes and neighbours make the programs' FIB lookups succeed (or
// fail in known ways), the same next hops described for the reference
// model, and a loaded enforcer to run packets through. Tests, fuzzing and
// benchmarks share it.
package dptest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// Addresses of the test world. Uplink traffic goes to the DN prefixes,
// downlink tunnels to the gNB addresses.
var (
	N3v4      = netip.MustParseAddr("192.0.2.1")
	N3v6      = netip.MustParseAddr("2001:db8:3::1")
	N6v4      = netip.MustParseAddr("198.51.100.1")
	N6v6      = netip.MustParseAddr("2001:db8:6::1")
	GNBv4     = netip.MustParseAddr("192.0.2.2")
	GNBv6     = netip.MustParseAddr("2001:db8:3::2")
	DNGWv4    = netip.MustParseAddr("198.51.100.2")
	DNGWv6    = netip.MustParseAddr("2001:db8:6::2")
	DNv4      = netip.MustParsePrefix("203.0.113.0/24") // routed via the DN gateway
	DNv6      = netip.MustParsePrefix("2001:db8:d::/48")
	NoNeighV4 = netip.MustParsePrefix("203.0.114.0/24") // routed via a gateway without neighbour entry
	NoNeighV6 = netip.MustParsePrefix("2001:db8:e::/48")
	// Anything else (100.64.0.0/10, say) has no route.
	NoRouteV4 = netip.MustParseAddr("100.64.0.1")
	NoRouteV6 = netip.MustParseAddr("2001:db8:f::1")
)

// Hop is a next hop the kernel resolves; nil in a Route means "no neighbour".
type Hop struct {
	IfIndex        int
	SrcMAC, DstMAC [6]byte
	MTU            int
}

// Route is what the FIB answers for a destination prefix. Unreachable
// routes (local, broadcast, no route at all) make the lookup fail.
type Route struct {
	Prefix      netip.Prefix
	Hop         *Hop
	Unreachable bool
}

// World is the topology: gnb <-> [n3 upf n6] <-> dn, all in namespaces.
type World struct {
	UPF, GNB, DN *testnet.NS
	N3, N6       testnet.Link // in UPF
	GNBLink      testnet.Link // the gNB's end of N3
	DNLink       testnet.Link // the data network's end of N6
	Routes       []Route      // what bpf_fib_lookup answers in UPF
}

func mac6(m net.HardwareAddr) (out [6]byte) {
	copy(out[:], m)
	return out
}

// NewWorld builds the topology; cleanup removes it.
func NewWorld(t testing.TB) *World {
	t.Helper()
	testnet.RequirePrivileged(t)
	w := &World{
		UPF: testnet.NewNS(t, "upf"),
		GNB: testnet.NewNS(t, "gnb"),
		DN:  testnet.NewNS(t, "dn"),
	}
	w.N3, w.GNBLink = testnet.Veth(t, w.UPF, "n3", w.GNB, "gnb0")
	w.N6, w.DNLink = testnet.Veth(t, w.UPF, "n6", w.DN, "dn0")
	for _, k := range []string{"net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding"} {
		w.UPF.Sysctl(t, k, "1")
	}
	w.UPF.AddAddr(t, "n3", N3v4.String()+"/24")
	w.UPF.AddAddr(t, "n3", N3v6.String()+"/64")
	w.UPF.AddAddr(t, "n6", N6v4.String()+"/24")
	w.UPF.AddAddr(t, "n6", N6v6.String()+"/64")
	w.GNB.AddAddr(t, "gnb0", GNBv4.String()+"/24")
	w.GNB.AddAddr(t, "gnb0", GNBv6.String()+"/64")
	w.DN.AddAddr(t, "dn0", DNGWv4.String()+"/24")
	w.DN.AddAddr(t, "dn0", DNGWv6.String()+"/64")

	w.UPF.AddNeigh(t, "n3", GNBv4.String(), w.GNBLink.MAC)
	w.UPF.AddNeigh(t, "n3", GNBv6.String(), w.GNBLink.MAC)
	w.UPF.AddNeigh(t, "n6", DNGWv4.String(), w.DNLink.MAC)
	w.UPF.AddNeigh(t, "n6", DNGWv6.String(), w.DNLink.MAC)
	w.UPF.AddRoute(t, DNv4.String(), DNGWv4.String(), "n6")
	w.UPF.AddRoute(t, DNv6.String(), DNGWv6.String(), "n6")
	w.UPF.AddRoute(t, NoNeighV4.String(), "198.51.100.9", "n6")
	w.UPF.AddRoute(t, NoNeighV6.String(), "2001:db8:6::9", "n6")

	toGNB := &Hop{IfIndex: w.N3.Index, SrcMAC: mac6(w.N3.MAC), DstMAC: mac6(w.GNBLink.MAC), MTU: 1500}
	toDN := &Hop{IfIndex: w.N6.Index, SrcMAC: mac6(w.N6.MAC), DstMAC: mac6(w.DNLink.MAC), MTU: 1500}
	pfx := netip.MustParsePrefix
	w.Routes = []Route{
		{Prefix: DNv4, Hop: toDN},
		{Prefix: DNv6, Hop: toDN},
		{Prefix: NoNeighV4},
		{Prefix: NoNeighV6},
		// Connected subnets: only the peers have neighbour entries.
		{Prefix: pfx("192.0.2.0/24")},
		{Prefix: pfx("2001:db8:3::/64")},
		{Prefix: pfx("198.51.100.0/24")},
		{Prefix: pfx("2001:db8:6::/64")},
		{Prefix: netip.PrefixFrom(GNBv4, 32), Hop: toGNB},
		{Prefix: netip.PrefixFrom(GNBv6, 128), Hop: toGNB},
		{Prefix: netip.PrefixFrom(DNGWv4, 32), Hop: toDN},
		{Prefix: netip.PrefixFrom(DNGWv6, 128), Hop: toDN},
		// Local and broadcast addresses are not forwarded.
		{Prefix: netip.PrefixFrom(N3v4, 32), Unreachable: true},
		{Prefix: netip.PrefixFrom(N3v6, 128), Unreachable: true},
		{Prefix: netip.PrefixFrom(N6v4, 32), Unreachable: true},
		{Prefix: netip.PrefixFrom(N6v6, 128), Unreachable: true},
		{Prefix: pfx("192.0.2.255/32"), Unreachable: true},
		{Prefix: pfx("198.51.100.255/32"), Unreachable: true},
	}
	return w
}

// Config is an enforcer configuration for the world, small enough to load
// fast; callers raise capacities where they need them.
func (w *World) Config() enforcer.Config {
	return enforcer.Config{
		MaxSessions: 4096,
		MaxRules:    65536,
		MaxQERs:     4096,
		N3v4:        N3v4,
		N3v6:        N3v6,
	}
}

// Load loads an enforcer (inside the UPF namespace, where its test runs
// must happen for the FIB lookups to see the world's routes).
func (w *World) Load(t testing.TB, cfg enforcer.Config) *enforcer.Enforcer {
	t.Helper()
	var e *enforcer.Enforcer
	err := w.UPF.Do(func() (err error) {
		e, err = enforcer.New(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("load datapath: %+v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// Run runs a program on a frame inside the UPF namespace, arriving on N3
// (uplink programs) or N6 (downlink programs).
func (w *World) Run(e *enforcer.Enforcer, p enforcer.Program, frame []byte) (act enforcer.XDPAction, out []byte, err error) {
	ifindex := w.N3.Index
	if p == enforcer.ProgDownlink || p == enforcer.ProgDownlinkFloorParse || p == enforcer.ProgDownlinkFloorForward {
		ifindex = w.N6.Index
	}
	err = w.UPF.Do(func() (err error) {
		act, out, err = e.TestRun(p, frame, ifindex)
		return err
	})
	return act, out, err
}

// RunBatch runs many frames in one trip into the namespace.
func (w *World) RunBatch(e *enforcer.Enforcer, p enforcer.Program, frames [][]byte, fn func(i int, act enforcer.XDPAction, out []byte)) error {
	ifindex := w.N3.Index
	if p == enforcer.ProgDownlink || p == enforcer.ProgDownlinkFloorParse || p == enforcer.ProgDownlinkFloorForward {
		ifindex = w.N6.Index
	}
	return w.UPF.Do(func() error {
		for i, f := range frames {
			act, out, err := e.TestRun(p, f, ifindex)
			if err != nil {
				return err
			}
			fn(i, act, out)
		}
		return nil
	})
}
