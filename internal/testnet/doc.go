// Package testnet builds throw-away network topologies for privileged tests.
//
// Everything it creates lives inside network namespaces that the test itself
// created (named "pinet-<name>-<random>"), and t.Cleanup removes them again.
// It never creates links in the host's root namespace and never sends
// traffic; it only builds topology (namespaces, veth pairs, addresses,
// routes, neighbour entries, sysctls, MTUs).
//
// Typical use:
//
//	testnet.RequirePrivileged(t)
//	a := testnet.NewNS(t, "ran")
//	b := testnet.NewNS(t, "upf")
//	la, lb := testnet.Veth(t, a, "veth0", b, "veth0")
//	a.AddAddr(t, la.Name, "10.0.0.1/24")
//	b.AddAddr(t, lb.Name, "10.0.0.2/24")
//	a.AddRoute(t, "10.1.0.0/16", "10.0.0.2", "")
//	a.AddNeigh(t, la.Name, "10.0.0.2", lb.MAC)
//	b.Sysctl(t, "net.ipv4.conf.all.forwarding", "1")
//
// Helpers that take a testing.TB call t.Fatal on failure; call them from the
// test's own goroutine.
package testnet
