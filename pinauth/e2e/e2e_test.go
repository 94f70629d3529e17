// Package e2e runs PINE authentication end to end: a PINE's EAP-MD5 peer
// behind the PEGC relay (TCP), the authenticator, a real FreeRADIUS as the
// DN-AAA, the real N4 server and the real datapath, with packets run
// through the XDP programs with BPF_PROG_TEST_RUN.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/pfcp"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth"
	"github.com/pine-upf/pine-upf/pinauth/demo"
	"github.com/pine-upf/pine-upf/pinauth/eap"
	"github.com/pine-upf/pine-upf/pinauth/freeradius"
)

var (
	ue     = netip.MustParseAddr("10.45.0.2")
	server = netip.MustParseAddr("203.0.113.5")
)

const (
	gnbTEID = 0x77
	secret  = "pine-e2e-secret"
)

type env struct {
	t    *testing.T
	w    *dptest.World
	e    *enforcer.Enforcer
	sess *smfsim.Session
}

// newEnv: datapath + N4 server + an associated SMF with the PEGC's session
// (no default rule: only PINE rules let traffic through).
func newEnv(t *testing.T) *env {
	w := dptest.NewWorld(t)
	e := w.Load(t, w.Config())
	srv := dptest.StartN4(t, e, pfcp.Config{})
	ctx := context.Background()

	c, err := smfsim.Dial(ctx, srv.Addr().String(), smfsim.Options{NodeID: "127.0.0.2", LocalAddr: "127.0.0.2:0",
		Timeout: time.Second, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := c.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, GNB: dptest.GNBv4, GNBTEID: gnbTEID})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, w: w, e: e, sess: sess}
}

func (v *env) uplink(port uint16) enforcer.XDPAction {
	f := pkt.Uplink{
		L2:    pkt.L2{Dst: [6]byte(v.w.N3.MAC)},
		Outer: pkt.IP{Src: dptest.GNBv4, Dst: dptest.N3v4},
		GTP:   pkt.GTP{TEID: v.sess.TEID, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 1)}},
		Inner: pkt.Inner{IP: pkt.IP{Src: ue, Dst: server}, Proto: pkt.UDP, SrcPort: port, DstPort: 53, PayloadLen: 20},
	}.MustBuild()
	act, _, err := v.w.Run(v.e, enforcer.ProgUplink, f.Bytes)
	if err != nil {
		v.t.Fatal(err)
	}
	return act
}

func (v *env) downlink(port uint16) enforcer.XDPAction {
	f := pkt.Downlink{
		L2:    pkt.L2{Dst: [6]byte(v.w.N6.MAC)},
		Inner: pkt.Inner{IP: pkt.IP{Src: server, Dst: ue}, Proto: pkt.UDP, SrcPort: 53, DstPort: port, PayloadLen: 20},
	}.MustBuild()
	act, _, err := v.w.Run(v.e, enforcer.ProgDownlink, f.Bytes)
	if err != nil {
		v.t.Fatal(err)
	}
	return act
}

// both: uplink and downlink verdicts of a PINE port, "allowed" only if both
// are redirected.
func (v *env) allowed(port uint16) bool {
	return v.uplink(port) == enforcer.XDPRedirect && v.downlink(port) == enforcer.XDPRedirect
}

func (v *env) denied(port uint16) bool {
	return v.uplink(port) == enforcer.XDPDrop && v.downlink(port) == enforcer.XDPDrop
}

type smf struct {
	auth  *pinauth.Authenticator
	das   netip.AddrPort
	relay string
	aaa   *freeradius.Server
}

func newSMF(t *testing.T, v *env, aaa string) *smf {
	auth, err := pinauth.New(pinauth.Config{AAA: []pinauth.AAAServer{{Addr: aaa, Secret: []byte(secret)}},
		Timeout: 300 * time.Millisecond, Retries: 2, DefaultMBRUL: 10e6, DefaultMBRDL: 10e6})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	das, err := auth.ListenDisconnect("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	rs := &pinauth.RelayServer{Auth: auth, Session: func(p netip.Addr) (pinauth.UPF, bool) { return v.sess, p == ue }}
	go rs.Serve(ln)
	return &smf{auth: auth, das: das, relay: ln.Addr().String()}
}

func (s *smf) admit(t *testing.T, id uint16, identity, password string, port uint16) (pinauth.WireMessage, *eap.Peer, time.Time) {
	t.Helper()
	peer := &eap.Peer{Identity: identity, Password: []byte(password)}
	res, err := pinauth.PEGCAdmit(context.Background(), s.relay, pinauth.WireMessage{PEGC: ue.String(), PINEID: id,
		EAPIdentity: identity, Addr: ue.String(), Proto: pkt.UDP, Ports: []string{fmt.Sprintf("%d-%d", port, port+9)}}, peer)
	if err != nil {
		t.Fatal(err)
	}
	return res, peer, time.Now()
}

func TestPINEAuthenticationEndToEnd(t *testing.T) {
	v := newEnv(t)
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	s := newSMF(t, v, aaa.Addr)

	if !v.denied(5000) || !v.denied(5100) {
		t.Fatal("PINE traffic passes before any authentication")
	}

	// PINE A: EAP-MD5 succeeds → its rules are in the datapath by the time
	// it receives EAP-Success.
	resA, peerA, successAt := s.admit(t, 1, "pine-a@psp.example", "correct horse battery staple", 5000)
	if !resA.OK || !peerA.Succeeded() {
		t.Fatalf("PINE A: %+v, peer result %d", resA, peerA.Result())
	}
	firstAllowed := time.Time{}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if v.uplink(5000) == enforcer.XDPRedirect {
			firstAllowed = time.Now()
			break
		}
	}
	if firstAllowed.IsZero() {
		t.Fatal("PINE A authenticated but its packets are dropped")
	}
	g := s.auth.Lookup(resA.SessionID)
	t.Logf("EAP-Success timing: Access-Accept → PFCP rules installed %v; Access-Accept → first allowed packet %v; "+
		"PINE got EAP-Success → first allowed packet %v (rules go in before EAP-Success is sent)",
		g.InstalledAt.Sub(g.AcceptedAt), firstAllowed.Sub(g.AcceptedAt), firstAllowed.Sub(successAt))
	for _, c := range []struct {
		port uint16
		want bool
	}{{5000, true}, {5009, true}, {5010, false}, {4999, false}} {
		if got := v.allowed(c.port); got != c.want {
			t.Errorf("PINE A port %d: allowed %v, want %v", c.port, got, c.want)
		}
	}
	if p := v.sess.PINEs(); len(p) != 1 || p[0].MBRUL != 2e6 || p[0].MBRDL != 8e6 {
		t.Errorf("installed PINEs %+v, want A with the DN-AAA's 2/8 Mbit/s", p)
	}

	// PINE B: wrong password → nothing installed, its traffic dropped.
	resB, peerB, _ := s.admit(t, 2, "pine-b@psp.example", "not B's password", 5100)
	if resB.OK || !strings.Contains(resB.Error, "rejected") || peerB.Result() != eap.CodeFailure {
		t.Errorf("PINE B: %+v, peer result %d", resB, peerB.Result())
	}
	if !v.denied(5100) {
		t.Error("PINE B's traffic passes after a failed authentication")
	}
	if len(v.sess.PINEs()) != 1 {
		t.Errorf("PINEs installed: %+v", v.sess.PINEs())
	}

	// Revocation by the DN-AAA: Disconnect-Request → ACK → A dropped.
	wire, err := pinauth.EncodeDisconnectRequest(pinauth.NewDisconnectRequest([]byte(secret),
		pinauth.DisconnectOptions{SessionID: resA.SessionID, UserName: "pine-a@psp.example"}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pinauth.SendDisconnect(context.Background(), s.das.String(), wire, []byte(secret), time.Second, 1)
	if err != nil || r.Code != radius.CodeDisconnectACK {
		t.Fatalf("Disconnect: %+v %v", r, err)
	}
	if !v.denied(5000) {
		t.Error("PINE A still passes after revocation")
	}
	if len(v.sess.PINEs()) != 0 {
		t.Errorf("PINEs installed after revocation: %+v", v.sess.PINEs())
	}

	// A authenticates again; the earlier Disconnect-Request replayed does
	// not revoke the new session.
	resA2, _, _ := s.admit(t, 1, "pine-a@psp.example", "correct horse battery staple", 5000)
	if !resA2.OK || !v.allowed(5000) {
		t.Fatalf("re-admission of A: %+v", resA2)
	}
	r, err = pinauth.SendDisconnect(context.Background(), s.das.String(), wire, []byte(secret), time.Second, 1)
	if err != nil || r.Code != radius.CodeDisconnectACK {
		t.Errorf("replay answered %+v %v (want the cached ACK)", r, err)
	}
	if !v.allowed(5000) {
		t.Error("a replayed Disconnect-Request revoked the new session")
	}
	// A tampered Disconnect-Request for the new session: discarded.
	wire2, _ := pinauth.EncodeDisconnectRequest(pinauth.NewDisconnectRequest([]byte(secret),
		pinauth.DisconnectOptions{SessionID: resA2.SessionID}))
	wire2[len(wire2)-1] ^= 1
	if _, err := pinauth.SendDisconnect(context.Background(), s.das.String(), wire2, []byte(secret), 300*time.Millisecond, 0); err == nil {
		t.Error("a tampered Disconnect-Request was answered")
	}
	if !v.allowed(5000) {
		t.Error("a tampered Disconnect-Request revoked A")
	}

	// The DN-AAA goes away: PINE C's admission gives up after the bounded
	// retries, with a clear error, and installs nothing.
	aaa.Stop()
	start := time.Now()
	resC, peerC, _ := s.admit(t, 3, "pine-c@psp.example", "pine c secret", 6000)
	if resC.OK || !strings.Contains(resC.Error, "no authentic answer from the DN-AAA") || peerC.Result() != eap.CodeFailure {
		t.Errorf("PINE C with the DN-AAA down: %+v", resC)
	}
	t.Logf("DN-AAA down: %q after %v", resC.Error, time.Since(start).Round(time.Millisecond))
	if !v.denied(6000) || slices.ContainsFunc(v.sess.PINEs(), func(p smfsim.PINE) bool { return p.ID == 3 }) {
		t.Error("PINE C's rules installed without the DN-AAA")
	}
}

// The demo story, with the datapath as the probe.
func TestDemoStory(t *testing.T) {
	v := newEnv(t)
	freeradius.StartT(t, freeradius.Options{Secret: "unused"}) // skip/fail like the others without FreeRADIUS
	var out bytes.Buffer
	steps, err := demo.Run(context.Background(), demo.Options{Session: v.sess, UEAddr: ue, Out: &out,
		Probe: func(ctx context.Context, step string, p demo.PINE) (bool, error) { return v.allowed(p.Port), nil }})
	t.Logf("demo:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 7 {
		t.Errorf("%d steps", len(steps))
	}
	for _, s := range steps {
		if !s.Probed || s.Allowed != s.Want {
			t.Errorf("step %+v", s)
		}
	}
}
