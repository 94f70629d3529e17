package smfsim

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/internal/tshark"
	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
	"github.com/wmnsk/go-pfcp/message"
)

// TestTsharkDissect captures the simulator's traffic with a fake UPF on
// loopback and requires Wireshark's PFCP dissector to decode every message
// without a malformed field or an error-severity expert info.
func TestTsharkDissect(t *testing.T) {
	u, err := fakeupf.New("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetPoke(true)
	capture := tshark.Start(t, netip.MustParseAddrPort(u.Addr()).Port())
	runDissectScenario(t, u)
	frames, verbose := capture.Stop()
	types := tshark.Check(t, frames)
	// Every message type of the scenario must have been seen (decimal types).
	for _, want := range []string{"1", "2", "5", "6", "9", "10", "50", "51", "52", "53", "54", "55", "56", "57"} {
		if types[want] == 0 {
			t.Errorf("no PFCP message type %s in the capture (%v)", want, types)
		}
	}
	for _, s := range []string{
		"Flow Description: permit out 17 from any to 10.45.0.2 5000-5009",
		"Flow Description: permit out 6 from any to 2001:db8:1:0:aa::2 443",
		"Flow Description: permit out ip from any to assigned",
	} {
		if !strings.Contains(verbose, s) {
			t.Errorf("dissection lacks %q", s)
		}
	}
	t.Logf("tshark decoded %d frames, PFCP types %v", len(frames), types)
}

// runDissectScenario exercises every message the simulator sends and
// answers: association, establishment (IPv4v6, default rule and an initial
// PINE), PINE add/update/remove, an answered heartbeat and report from the
// UPF, deletion, heartbeat, release, and an FQDN Node ID.
func runDissectScenario(t *testing.T, u *fakeupf.UPF) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, u.Addr(), Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	ue := netip.MustParseAddr("10.45.0.2")
	s, err := c.EstablishPEGC(ctx, PEGC{
		UEIPv4: ue, UEIPv6Prefix: netip.MustParsePrefix("2001:db8:1::/56"),
		GNB: netip.MustParseAddr("127.0.0.3"), GNBTEID: 0x100, NetworkInstance: "internet",
		Default: &DefaultRule{Filter: "permit out ip from any to assigned", MBRUL: 50e6, MBRDL: 100e6, VolumeThreshold: 1e9},
		PINEs:   []PINE{{ID: 9, Addr: ue, Proto: 6, Ports: []PortRange{{8080, 8080}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddPINE(ctx, PINE{ID: 1, Addr: ue, Proto: 17, Ports: []PortRange{{5000, 5009}}, MBRUL: 1e6, MBRDL: 2e6, VolumeThreshold: 1e6}); err != nil {
		t.Fatal(err)
	}
	p2 := PINE{ID: 2, Addr: netip.MustParseAddr("2001:db8:1:0:aa::2"), Proto: 6, Ports: []PortRange{{443, 443}, {8443, 8443}}, GateClosed: true}
	if err := s.AddPINE(ctx, p2); err != nil {
		t.Fatal(err)
	}
	p2.GateClosed, p2.MBRUL, p2.VolumeThreshold = false, 5e5, 1e4
	if err := s.UpdatePINE(ctx, p2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Reports():
	case <-time.After(5 * time.Second):
		t.Fatal("no report from the fake UPF")
	}
	for _, id := range []uint16{1, 2, 9} {
		if _, err := s.RemovePINE(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	// A session without rules (DROP default) and an IPv6 N3.
	s2, err := c.EstablishPEGC(ctx, PEGC{UEIPv6Prefix: netip.MustParsePrefix("2001:db8:2::/64"),
		GNB: netip.MustParseAddr("::1"), GNBTEID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c2, err := Dial(ctx, u.Addr(), Options{NodeID: "smf.example.org", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, _, err := c2.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(u.Requests(message.MsgTypeSessionEstablishmentRequest)); n != 2 {
		t.Errorf("%d establishments", n)
	}
	for _, err := range u.Errors() {
		t.Errorf("fake UPF: %v", err)
	}
}
