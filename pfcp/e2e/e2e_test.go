// Package e2e runs the SMF simulator against the real N4 server and the
// real datapath over loopback UDP, and proves with BPF_PROG_TEST_RUN that
// what PFCP says is what the programs do.
package e2e

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/internal/tshark"
	"github.com/pine-upf/pine-upf/pfcp"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
)

var (
	ue     = netip.MustParseAddr("10.45.0.2")
	server = netip.MustParseAddr("203.0.113.5")
)

const gnbTEID = 0x77

// probingEnforcer runs a probe packet through the datapath right after
// every successful change, before the server can send its response.
type probingEnforcer struct {
	*enforcer.Enforcer
	mu    sync.Mutex
	probe func() enforcer.XDPAction
	seen  []enforcer.XDPAction
}

func (p *probingEnforcer) InstallSession(s enforcer.Session) error {
	_, err := p.ReplaceSession(s)
	return err
}

// ReplaceSession is what the server calls for every change.
func (p *probingEnforcer) ReplaceSession(s enforcer.Session) (map[uint32]enforcer.Counter, error) {
	removed, err := p.Enforcer.ReplaceSession(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && p.probe != nil {
		p.seen = append(p.seen, p.probe())
	}
	return removed, err
}

type env struct {
	t   *testing.T
	w   *dptest.World
	e   *probingEnforcer
	srv *pfcp.Server
}

func newEnv(t *testing.T, cfg pfcp.Config) *env {
	w := dptest.NewWorld(t)
	e := &probingEnforcer{Enforcer: w.Load(t, w.Config())}
	srv := dptest.StartN4(t, e, cfg)
	return &env{t: t, w: w, e: e, srv: srv}
}

func (v *env) dial(nodeID string, recovery time.Time) *smfsim.Client {
	c, err := smfsim.Dial(context.Background(), v.srv.Addr().String(), smfsim.Options{
		NodeID: nodeID, LocalAddr: nodeID + ":0", RecoveryTime: recovery, Timeout: time.Second, Retries: 2})
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { c.Close() })
	return c
}

// uplink runs a GTP-U packet of the PINE at port through xdp_n3.
func (v *env) uplink(teid uint32, port uint16) enforcer.XDPAction {
	f := pkt.Uplink{
		L2:    pkt.L2{Dst: [6]byte(v.w.N3.MAC)},
		Outer: pkt.IP{Src: dptest.GNBv4, Dst: dptest.N3v4},
		GTP:   pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 1)}},
		Inner: pkt.Inner{IP: pkt.IP{Src: ue, Dst: server}, Proto: pkt.UDP, SrcPort: port, DstPort: 53, PayloadLen: 20},
	}.MustBuild()
	act, _, err := v.w.Run(v.e.Enforcer, enforcer.ProgUplink, f.Bytes)
	if err != nil {
		v.t.Fatal(err)
	}
	return act
}

// downlink runs a packet to the PINE at port through xdp_n6 and returns
// the verdict and, when encapsulated, the GTP-U TEID it carries.
func (v *env) downlink(port uint16) (enforcer.XDPAction, uint32) {
	f := pkt.Downlink{
		L2:    pkt.L2{Dst: [6]byte(v.w.N6.MAC)},
		Inner: pkt.Inner{IP: pkt.IP{Src: server, Dst: ue}, Proto: pkt.UDP, SrcPort: 53, DstPort: port, PayloadLen: 20},
	}.MustBuild()
	act, out, err := v.w.Run(v.e.Enforcer, enforcer.ProgDownlink, f.Bytes)
	if err != nil {
		v.t.Fatal(err)
	}
	if act != enforcer.XDPRedirect || len(out) < 14+20+8+8 {
		return act, 0
	}
	g := out[14+20+8:]
	return act, uint32(g[4])<<24 | uint32(g[5])<<16 | uint32(g[6])<<8 | uint32(g[7])
}

func TestRulesFollowPFCP(t *testing.T) {
	v := newEnv(t, pfcp.Config{})
	ctx := context.Background()
	smf := v.dial("127.0.0.2", time.Now())
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, GNB: dptest.GNBv4, GNBTEID: gnbTEID})
	if err != nil {
		t.Fatal(err)
	}
	if sess.TEID == 0 {
		t.Fatal("the UPF allocated no TEID")
	}
	if a := v.uplink(sess.TEID, 5000); a != enforcer.XDPDrop {
		t.Errorf("before any PINE rule: %v, want XDP_DROP", a)
	}

	// Establishment → the rule is enforced, and already was when the
	// server answered.
	v.e.mu.Lock()
	v.e.probe = func() enforcer.XDPAction { return v.uplink(sess.TEID, 5000) }
	v.e.seen = nil
	v.e.mu.Unlock()
	pineA := smfsim.PINE{ID: 1, Addr: ue, Proto: pkt.UDP, Ports: []smfsim.PortRange{{Lo: 5000, Hi: 5009}}}
	if err := sess.AddPINE(ctx, pineA); err != nil {
		t.Fatal(err)
	}
	v.e.mu.Lock()
	seen := v.e.seen
	v.e.probe = nil
	v.e.mu.Unlock()
	if len(seen) != 1 || seen[0] != enforcer.XDPRedirect {
		t.Errorf("verdict when the server had installed the rule, before its response: %v, want [XDP_REDIRECT]", seen)
	}
	for _, c := range []struct {
		port uint16
		want enforcer.XDPAction
	}{{5000, enforcer.XDPRedirect}, {5009, enforcer.XDPRedirect}, {5010, enforcer.XDPDrop}, {4999, enforcer.XDPDrop}} {
		if a := v.uplink(sess.TEID, c.port); a != c.want {
			t.Errorf("uplink port %d after AddPINE: %v, want %v", c.port, a, c.want)
		}
	}
	if a, teid := v.downlink(5005); a != enforcer.XDPRedirect || teid != gnbTEID {
		t.Errorf("downlink to PINE A: %v TEID %#x, want XDP_REDIRECT to TEID %#x", a, teid, gnbTEID)
	}

	// Modification → changed: the gate closes.
	pineA.GateClosed = true
	if err := sess.UpdatePINE(ctx, pineA); err != nil {
		t.Fatal(err)
	}
	if a := v.uplink(sess.TEID, 5000); a != enforcer.XDPDrop {
		t.Errorf("after closing the gate: %v, want XDP_DROP", a)
	}
	pineA.GateClosed = false
	if err := sess.UpdatePINE(ctx, pineA); err != nil {
		t.Fatal(err)
	}
	if a := v.uplink(sess.TEID, 5000); a != enforcer.XDPRedirect {
		t.Errorf("after opening the gate: %v, want XDP_REDIRECT", a)
	}

	// Removal of the PINE → its traffic is dropped again; usage reported.
	usage, err := sess.RemovePINE(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a := v.uplink(sess.TEID, 5000); a != enforcer.XDPDrop {
		t.Errorf("after RemovePINE: %v, want XDP_DROP", a)
	}
	t.Logf("usage reported on removal: %+v", usage)

	// Deletion → gone: the TEID is unknown.
	if err := sess.AddPINE(ctx, pineA); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	st0, _ := v.e.Stats()
	v.uplink(sess.TEID, 5000)
	st1, _ := v.e.Stats()
	if st1.Packets[enforcer.Uplink][enforcer.ReasonUnknownTEID].Packets != st0.Packets[enforcer.Uplink][enforcer.ReasonUnknownTEID].Packets+1 {
		t.Error("after deletion the TEID still names a session")
	}
}

// A peer that re-associates with a new Recovery Time Stamp has restarted:
// its sessions go (TS 23.007), and with them their rules.
func TestPeerRestartPurgesSessions(t *testing.T) {
	v := newEnv(t, pfcp.Config{})
	ctx := context.Background()
	first := time.Now().Add(-time.Hour).Truncate(time.Second)
	smf := v.dial("127.0.0.2", first)
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, GNB: dptest.GNBv4, GNBTEID: gnbTEID,
		PINEs: []smfsim.PINE{{ID: 1, Addr: ue, Proto: pkt.UDP, Ports: []smfsim.PortRange{{Lo: 5000, Hi: 5000}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if a := v.uplink(sess.TEID, 5000); a != enforcer.XDPRedirect {
		t.Fatalf("established PINE: %v", a)
	}
	smf.Close()

	restarted := v.dial("127.0.0.2", first.Add(time.Minute))
	if _, _, err := restarted.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for v.uplink(sess.TEID, 5000) != enforcer.XDPDrop {
		if time.Now().After(deadline) {
			t.Fatal("the restarted peer's old session still forwards")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(v.e.SEIDs()); n != 0 {
		t.Errorf("%d sessions left after the peer restarted", n)
	}
}

// TestServerEncodingDissects captures an SMF simulator's exchange with the
// real server and requires Wireshark's PFCP dissector to decode every
// message — ours included — without a malformed field or an expert error.
func TestServerEncodingDissects(t *testing.T) {
	v := newEnv(t, pfcp.Config{HeartbeatInterval: 200 * time.Millisecond})
	capture := tshark.Start(t, netip.MustParseAddrPort(v.srv.Addr().String()).Port())
	ctx := context.Background()
	smf := v.dial("127.0.0.2", time.Now())
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := smf.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, UEIPv6Prefix: netip.MustParsePrefix("2001:db8:a::/64"),
		GNB: dptest.GNBv4, GNBTEID: gnbTEID,
		Default: &smfsim.DefaultRule{Filter: "permit out ip from any to assigned", MBRUL: 50e6, MBRDL: 100e6, VolumeThreshold: 1e9}})
	if err != nil {
		t.Fatal(err)
	}
	pine := smfsim.PINE{ID: 1, Addr: ue, Proto: pkt.UDP, Ports: []smfsim.PortRange{{Lo: 5000, Hi: 5009}}, MBRUL: 1e6, VolumeThreshold: 1e6}
	if err := sess.AddPINE(ctx, pine); err != nil {
		t.Fatal(err)
	}
	pine.GateClosed = true
	if err := sess.UpdatePINE(ctx, pine); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a UPF-initiated heartbeat or two
	if _, err := sess.RemovePINE(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := smf.Release(ctx); err != nil {
		t.Fatal(err)
	}
	frames, _ := capture.Stop()
	types := tshark.Check(t, frames)
	// Our responses and requests: association setup/release response (6, 10),
	// heartbeat request/response (1, 2), session responses (51, 53, 55).
	for _, want := range []string{"1", "2", "6", "10", "51", "53", "55"} {
		if types[want] == 0 {
			t.Errorf("no PFCP message type %s in the capture (%v)", want, types)
		}
	}
	t.Logf("tshark decoded %d frames, PFCP types %v", len(frames), types)
}
