package testnet

import (
	"fmt"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link identifies a network interface inside a test namespace.
type Link struct {
	NS    *NS
	Name  string
	Index int
	MAC   net.HardwareAddr
}

// Veth creates a veth pair with end aName in namespace a and end bName in
// namespace b (a and b may be the same namespace), sets both ends up, and
// returns them. Both namespaces must have been created with NewNS: links are
// never created in the host's root namespace. Interface names are limited to
// 15 bytes.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) (aLink, bLink Link) {
	t.Helper()
	if a == nil || b == nil {
		t.Fatalf("testnet: Veth(%s, %s): both ends need a namespace from NewNS; the root namespace is not allowed", aName, bName)
	}
	for _, n := range []string{aName, bName} {
		if n == "" || len(n) >= unix.IFNAMSIZ {
			t.Fatalf("testnet: Veth: invalid interface name %q (1..%d bytes)", n, unix.IFNAMSIZ-1)
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.handle)),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		t.Fatalf("testnet: add veth %s/%s <-> %s/%s: %v", a.Name, aName, b.Name, bName, err)
	}
	aLink = a.setUp(t, aName)
	bLink = b.setUp(t, bName)
	return aLink, bLink
}

// Link looks up the interface name in the namespace.
func (ns *NS) Link(t testing.TB, name string) Link {
	t.Helper()
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("testnet: %s: lookup link %s: %v", ns.Name, name, err)
	}
	return Link{NS: ns, Name: name, Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr}
}

func (ns *NS) setUp(t testing.TB, name string) Link {
	t.Helper()
	l := ns.link(t, name)
	if err := ns.nl.LinkSetUp(l); err != nil {
		t.Fatalf("testnet: %s: set %s up: %v", ns.Name, name, err)
	}
	return ns.Link(t, name)
}

func (ns *NS) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("testnet: %s: lookup link %s: %v", ns.Name, name, err)
	}
	return l
}

// SetMTU sets the MTU of interface dev.
func (ns *NS) SetMTU(t testing.TB, dev string, mtu int) {
	t.Helper()
	if err := ns.nl.LinkSetMTU(ns.link(t, dev), mtu); err != nil {
		t.Fatalf("testnet: %s: set %s mtu %d: %v", ns.Name, dev, mtu, err)
	}
}

// AddAddr adds an address in CIDR form ("10.0.0.1/24", "fd00::1/64") to
// interface dev. IPv6 addresses are added with nodad, so they are usable
// immediately.
func (ns *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatalf("testnet: AddAddr: %v", err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(ns.link(t, dev), addr); err != nil {
		t.Fatalf("testnet: %s: add address %s to %s: %v", ns.Name, cidr, dev, err)
	}
}

// AddRoute adds a route to dst, a CIDR prefix or "default". via is the
// gateway IP ("" for an on-link route) and dev the output interface ("" to
// let the kernel pick it from the gateway); at least one must be given.
// For "default" the address family follows via (IPv4 if via is empty).
func (ns *NS) AddRoute(t testing.TB, dst, via, dev string) {
	t.Helper()
	if via == "" && dev == "" {
		t.Fatalf("testnet: AddRoute %s: need a gateway or a device", dst)
	}
	r := &netlink.Route{}
	if via != "" {
		if r.Gw = net.ParseIP(via); r.Gw == nil {
			t.Fatalf("testnet: AddRoute %s: invalid gateway %q", dst, via)
		}
	}
	if dst == "default" {
		if r.Gw != nil && r.Gw.To4() == nil {
			dst = "::/0"
		} else {
			dst = "0.0.0.0/0"
		}
	}
	_, prefix, err := net.ParseCIDR(dst)
	if err != nil {
		t.Fatalf("testnet: AddRoute: %v", err)
	}
	r.Dst = prefix
	if dev != "" {
		r.LinkIndex = ns.link(t, dev).Attrs().Index
	}
	if err := ns.nl.RouteAdd(r); err != nil {
		t.Fatalf("testnet: %s: add route %s via %q dev %q: %v", ns.Name, dst, via, dev, err)
	}
}

// AddNeigh adds (or replaces) a permanent neighbour entry ip -> mac on
// interface dev, so no ARP/NDP is ever needed for ip.
func (ns *NS) AddNeigh(t testing.TB, dev, ip string, mac net.HardwareAddr) {
	t.Helper()
	addr := net.ParseIP(ip)
	if addr == nil {
		t.Fatalf("testnet: AddNeigh: invalid IP %q", ip)
	}
	family := netlink.FAMILY_V6
	if addr.To4() != nil {
		family = netlink.FAMILY_V4
	}
	n := &netlink.Neigh{
		LinkIndex:    ns.link(t, dev).Attrs().Index,
		Family:       family,
		State:        netlink.NUD_PERMANENT,
		IP:           addr,
		HardwareAddr: mac,
	}
	if err := ns.nl.NeighSet(n); err != nil {
		t.Fatalf("testnet: %s: add neighbour %s lladdr %s dev %s: %v", ns.Name, ip, mac, dev, err)
	}
}

// String returns "namespace/name".
func (l Link) String() string {
	ns := "?"
	if l.NS != nil {
		ns = l.NS.Name
	}
	return fmt.Sprintf("%s/%s", ns, l.Name)
}
