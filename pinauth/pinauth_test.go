package pinauth

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth/eap"
	"github.com/pine-upf/pine-upf/pinauth/freeradius"
)

const secret = "pine-aaa-test-secret"

var (
	ue = netip.MustParseAddr("10.45.0.2")
	// The PINE credentials of deploy/freeradius/users.
	pineA = eap.Peer{Identity: "pine-a@psp.example", Password: []byte("correct horse battery staple")}
	pineB = eap.Peer{Identity: "pine-b@psp.example", Password: []byte("pine b's real password")}
)

// fakeUPF records the PFCP calls the authenticator makes.
type fakeUPF struct {
	mu      sync.Mutex
	added   []smfsim.PINE
	removed []uint16
	failAdd error
}

func (f *fakeUPF) AddPINE(ctx context.Context, p smfsim.PINE) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd != nil {
		return f.failAdd
	}
	f.added = append(f.added, p)
	return nil
}

func (f *fakeUPF) RemovePINE(ctx context.Context, id uint16) ([]smfsim.UsageReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil, nil
}

func (f *fakeUPF) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.added), len(f.removed)
}

func newAuth(t *testing.T, aaa string, mod func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{AAA: []AAAServer{{Addr: aaa, Secret: []byte(secret)}},
		Timeout: 500 * time.Millisecond, Retries: 2, DefaultMBRUL: 1e6, DefaultMBRDL: 3e6}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func admitReq(p *eap.Peer, id uint16, port uint16) AdmitRequest {
	return AdmitRequest{PINEID: id, EAPIdentity: p.Identity, Addr: ue, Proto: 17,
		Ports: []smfsim.PortRange{{Lo: port, Hi: port + 9}}}
}

func TestAdmitEAPMD5AgainstFreeRADIUS(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	upf := &fakeUPF{}

	peer := pineA
	g, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer})
	if err != nil {
		t.Fatal(err)
	}
	if !peer.Succeeded() {
		t.Error("PINE A did not receive EAP-Success")
	}
	if len(upf.added) != 1 {
		t.Fatalf("AddPINE calls: %d", len(upf.added))
	}
	got := upf.added[0]
	// QoS from the Access-Accept's WISPr-Bandwidth-Max-Up/Down.
	if got.ID != 1 || got.Addr != ue || got.Proto != 17 || got.Ports[0] != (smfsim.PortRange{Lo: 5000, Hi: 5009}) ||
		got.MBRUL != 2000000 || got.MBRDL != 8000000 {
		t.Errorf("installed %+v", got)
	}
	if g.Rounds != 2 || g.AcceptedAt.IsZero() || g.InstalledAt.Before(g.AcceptedAt) || g.SuccessAt.Before(g.InstalledAt) {
		t.Errorf("grant %+v", g)
	}
	t.Logf("rounds %d, Access-Accept → rules installed %v", g.Rounds, g.InstalledAt.Sub(g.AcceptedAt))

	// A second admission of the same PINE ID in the same PEGC session is refused.
	peer2 := pineA
	if _, err := a.Admit(context.Background(), upf, admitReq(&peer2, 1, 5000), &PeerRelay{Peer: &peer2}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("duplicate admission: %v", err)
	}

	// PINE C has no QoS in its reply (but one direction): defaults fill in.
	c := eap.Peer{Identity: "pine-c@psp.example", Password: []byte("pine c secret")}
	if _, err := a.Admit(context.Background(), upf, admitReq(&c, 3, 6000), &PeerRelay{Peer: &c}); err != nil {
		t.Fatal(err)
	}
	if p := upf.added[1]; p.MBRUL != 500000 || p.MBRDL != 3e6 {
		t.Errorf("PINE C MBR %d/%d, want 500000 from the accept and the default 3000000", p.MBRUL, p.MBRDL)
	}
}

func TestWrongPasswordInstallsNothing(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	upf := &fakeUPF{}
	for _, p := range []eap.Peer{
		{Identity: pineB.Identity, Password: []byte("guess")},
		{Identity: "nobody@psp.example", Password: []byte("x")},
	} {
		_, err := a.Admit(context.Background(), upf, admitReq(&p, 2, 5100), &PeerRelay{Peer: &p})
		if !errors.Is(err, ErrRejected) {
			t.Errorf("%s: err %v, want ErrRejected", p.Identity, err)
		}
		if p.Result() != eap.CodeFailure {
			t.Errorf("%s: peer result %d, want EAP-Failure", p.Identity, p.Result())
		}
		t.Logf("%s: %v", p.Identity, err)
	}
	if n, _ := upf.counts(); n != 0 || len(a.Grants()) != 0 {
		t.Errorf("%d rules installed, %d grants after rejections", n, len(a.Grants()))
	}
}

func TestIdentityMismatch(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	upf := &fakeUPF{}
	// The PEGC claims PINE A; the device behind it is PINE B (with B's
	// valid password): refused before the DN-AAA is even asked.
	peer := pineB
	req := admitReq(&pineA, 1, 5000)
	if _, err := a.Admit(context.Background(), upf, req, &PeerRelay{Peer: &peer}); !errors.Is(err, ErrIdentityMismatch) {
		t.Errorf("err %v, want ErrIdentityMismatch", err)
	}
	if n, _ := upf.counts(); n != 0 {
		t.Error("rules installed")
	}
	// And an AAA address the SMF was not configured with is refused.
	req.AAA = "192.0.2.99:1812"
	if _, err := a.Admit(context.Background(), upf, req, &PeerRelay{Peer: &peer}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unconfigured AAA: %v", err)
	}
}

func TestAAAUnreachable(t *testing.T) {
	// Nothing listens on this port (ICMP port unreachable), and a server that
	// reads but never answers.
	port, _ := freeradius.FreePort()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var mu sync.Mutex
	got := 0
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
			mu.Lock()
			got++
			mu.Unlock()
		}
	}()
	for name, addr := range map[string]string{
		"closed port": netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String(),
		"silent":      silent.LocalAddr().String(),
	} {
		t.Run(name, func(t *testing.T) {
			a := newAuth(t, addr, func(c *Config) { c.Timeout = 200 * time.Millisecond; c.Retries = 2 })
			upf := &fakeUPF{}
			peer := pineA
			start := time.Now()
			_, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer})
			el := time.Since(start)
			if !errors.Is(err, ErrAAAUnreachable) {
				t.Fatalf("err %v, want ErrAAAUnreachable", err)
			}
			if !strings.Contains(err.Error(), "3 attempts") {
				t.Errorf("error does not say the attempts: %v", err)
			}
			if el < 550*time.Millisecond || el > 3*time.Second {
				t.Errorf("gave up after %v, want about 3×200ms", el)
			}
			if n, _ := upf.counts(); n != 0 || peer.Result() != eap.CodeFailure {
				t.Errorf("installed %d, peer result %d", n, peer.Result())
			}
			t.Logf("%v after %v", err, el.Round(time.Millisecond))
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 3 {
		t.Errorf("silent server received %d Access-Requests, want 3 (1 + 2 retries)", got)
	}
}

// tamperProxy sits between the authenticator and FreeRADIUS and rewrites
// FreeRADIUS's answers.
type tamperProxy struct {
	conn     *net.UDPConn
	upstream string
	mutate   func(resp, req []byte) []byte
}

func startTamperProxy(t *testing.T, upstream string, mutate func(resp, req []byte) []byte) string {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &tamperProxy{conn: c, upstream: upstream, mutate: mutate}
	go p.run()
	return c.LocalAddr().String()
}

func (p *tamperProxy) run() {
	buf := make([]byte, 4096)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := append([]byte(nil), buf[:n]...)
		go func() {
			up, err := net.Dial("udp", p.upstream)
			if err != nil {
				return
			}
			defer up.Close()
			up.Write(req)
			up.SetReadDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 4096)
			m, err := up.Read(b)
			if err != nil {
				return
			}
			p.conn.WriteToUDPAddrPort(p.mutate(b[:m], req), from)
		}()
	}
}

// resign recomputes the Response Authenticator of resp with s.
func resign(resp, req []byte, s string) []byte {
	h := md5.New()
	h.Write(resp[:4])
	h.Write(req[4:20])
	h.Write(resp[20:])
	h.Write([]byte(s))
	h.Sum(resp[4:4:20])
	return resp
}

func TestTamperedAnswersRejected(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	cases := map[string]func(resp, req []byte) []byte{
		// Only the Message-Authenticator is wrong: the Response
		// Authenticator is recomputed over the tampered packet.
		"bad Message-Authenticator": func(resp, req []byte) []byte {
			off, _ := maOffset(resp)
			resp[off] ^= 1
			return resign(resp, req, secret)
		},
		"wrong Response Authenticator": func(resp, req []byte) []byte {
			return resign(resp, req, "not the secret")
		},
		"attribute changed in flight": func(resp, req []byte) []byte {
			resp[len(resp)-1] ^= 0x80
			return resp
		},
		// An Access-Accept forged without the secret, in answer to the very
		// first request, as an on-path attacker would.
		"forged Accept": func(resp, req []byte) []byte {
			r := radius.New(radius.CodeAccessAccept, []byte("attacker"))
			r.Identifier = req[1]
			rfc2869.EAPMessage_Set(r, eap.Packet{Code: eap.CodeSuccess, ID: 1}.Marshal())
			b, _ := EncodeResponse(r, [16]byte(req[4:20]))
			return b
		},
		"no Message-Authenticator": func(resp, req []byte) []byte {
			p, _ := radius.Parse(resp, []byte(secret))
			p.Attributes.Del(rfc2869.MessageAuthenticator_Type)
			b, _ := p.MarshalBinary()
			return resign(b, req, secret)
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			proxy := startTamperProxy(t, aaa.Addr, mutate)
			a := newAuth(t, proxy, func(c *Config) { c.Timeout = 300 * time.Millisecond; c.Retries = 1 })
			upf := &fakeUPF{}
			peer := pineA
			_, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer})
			if !errors.Is(err, ErrAAAUnreachable) || !strings.Contains(err.Error(), "discarded") {
				t.Fatalf("err %v, want ErrAAAUnreachable with discarded answers", err)
			}
			if n, _ := upf.counts(); n != 0 || peer.Succeeded() {
				t.Errorf("installed %d, peer succeeded %v", n, peer.Succeeded())
			}
			t.Logf("%v", err)
		})
	}
	// The proxy itself is transparent when it does not tamper.
	proxy := startTamperProxy(t, aaa.Addr, func(resp, req []byte) []byte { return resp })
	a := newAuth(t, proxy, nil)
	peer := pineA
	if _, err := a.Admit(context.Background(), &fakeUPF{}, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer}); err != nil {
		t.Errorf("through an honest proxy: %v", err)
	}
}

// A malformed exchange: the AAA answers a challenge with no EAP in it.
func TestMalformedChallenge(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	proxy := startTamperProxy(t, aaa.Addr, func(resp, req []byte) []byte {
		p, _ := radius.Parse(resp, []byte(secret))
		if p.Code == radius.CodeAccessChallenge {
			p.Attributes.Del(rfc2869.EAPMessage_Type)
		}
		b, _ := EncodeResponse(p, [16]byte(req[4:20]))
		return b
	})
	a := newAuth(t, proxy, nil)
	upf := &fakeUPF{}
	peer := pineA
	if _, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer}); !errors.Is(err, ErrMalformed) {
		t.Errorf("err %v, want ErrMalformed", err)
	}
	if n, _ := upf.counts(); n != 0 {
		t.Error("rules installed")
	}
}

func TestInstallFailureSendsEAPFailure(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	upf := &fakeUPF{failAdd: errors.New("Rule creation/modification Failure")}
	peer := pineA
	if _, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer}); !errors.Is(err, ErrInstall) {
		t.Errorf("err %v, want ErrInstall", err)
	}
	if peer.Result() != eap.CodeFailure || len(a.Grants()) != 0 {
		t.Errorf("peer result %d, grants %d: the PINE must not believe it is admitted", peer.Result(), len(a.Grants()))
	}
}

func TestWireRelay(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	upf := &fakeUPF{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &RelayServer{Auth: a, Session: func(p netip.Addr) (UPF, bool) { return upf, p == ue }}
	go srv.Serve(ln)
	ctx := context.Background()

	peer := pineA
	res, err := PEGCAdmit(ctx, ln.Addr().String(), WireMessage{PEGC: ue.String(), PINEID: 1,
		EAPIdentity: peer.Identity, Addr: ue.String(), Proto: 17, Ports: []string{"5000-5009"}}, &peer)
	if err != nil || !res.OK || res.SessionID == "" || !peer.Succeeded() {
		t.Fatalf("admit over the wire: %+v %v (peer result %d)", res, err, peer.Result())
	}
	bad := eap.Peer{Identity: pineB.Identity, Password: []byte("wrong")}
	res, err = PEGCAdmit(ctx, ln.Addr().String(), WireMessage{PEGC: ue.String(), PINEID: 2,
		EAPIdentity: bad.Identity, Addr: ue.String(), Proto: 17, Ports: []string{"5100"}}, &bad)
	if err != nil || res.OK || !strings.Contains(res.Error, "rejected") || bad.Result() != eap.CodeFailure {
		t.Errorf("wrong password over the wire: %+v %v", res, err)
	}
	res, err = PEGCAdmit(ctx, ln.Addr().String(), WireMessage{PEGC: "10.45.0.99", PINEID: 3,
		EAPIdentity: "x", Addr: ue.String()}, &eap.Peer{Identity: "x"})
	if err != nil || res.OK || !strings.Contains(res.Error, "no PDU session") {
		t.Errorf("unknown PEGC: %+v %v", res, err)
	}
	if n, _ := upf.counts(); n != 1 {
		t.Errorf("%d rules installed, want 1", n)
	}
}

// --- Disconnect-Request (RFC 5176) ---

func admitted(t *testing.T, a *Authenticator, upf UPF) *Grant {
	t.Helper()
	peer := pineA
	g, err := a.Admit(context.Background(), upf, admitReq(&peer, 1, 5000), &PeerRelay{Peer: &peer})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func send(t *testing.T, das netip.AddrPort, wire []byte, s string) (DisconnectResult, error) {
	t.Helper()
	return SendDisconnect(context.Background(), das.String(), wire, []byte(s), 300*time.Millisecond, 0)
}

func TestDisconnect(t *testing.T) {
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	das, err := a.ListenDisconnect("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upf := &fakeUPF{}
	g := admitted(t, a, upf)
	enc := func(o DisconnectOptions, s string) []byte {
		b, err := EncodeDisconnectRequest(NewDisconnectRequest([]byte(s), o))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Discarded silently: wrong secret, tampered, no or bad
	// Message-Authenticator, stale Event-Timestamp.
	discards := map[string][]byte{
		"wrong secret": enc(DisconnectOptions{SessionID: g.SessionID}, "guess"),
		"tampered attribute": func() []byte {
			b := enc(DisconnectOptions{SessionID: g.SessionID}, secret)
			b[len(b)-1] ^= 1 // inside the Event-Timestamp: authenticators no longer match
			return b
		}(),
		"bad Message-Authenticator": func() []byte {
			b := enc(DisconnectOptions{SessionID: g.SessionID}, secret)
			off, _ := maOffset(b)
			b[off] ^= 1
			return requestAuthenticate(b, []byte(secret)) // Request Authenticator valid again
		}(),
		"no Message-Authenticator": func() []byte {
			p := NewDisconnectRequest([]byte(secret), DisconnectOptions{SessionID: g.SessionID})
			b, _ := p.Encode() // layeh: Request Authenticator only
			return b
		}(),
		"stale Event-Timestamp": enc(DisconnectOptions{SessionID: g.SessionID, Timestamp: time.Now().Add(-time.Hour)}, secret),
	}
	for name, b := range discards {
		if r, err := send(t, das, b, secret); err == nil {
			t.Errorf("%s: answered %v", name, r.Code)
		}
	}
	if st := a.DisconnectStats(); st.Discarded != len(discards) || st.ACK+st.NAK != 0 {
		t.Errorf("stats %+v", st)
	}

	// NAKs: unknown session, NAS mismatch, missing Event-Timestamp.
	for name, c := range map[string]struct {
		o     DisconnectOptions
		cause int
	}{
		"unknown session":         {DisconnectOptions{SessionID: "nope"}, CauseSessionContextNotFound},
		"NAS mismatch":            {DisconnectOptions{SessionID: g.SessionID, NASIdentifier: "other-smf"}, CauseNASIdentificationMismatch},
		"no Event-Timestamp":      {DisconnectOptions{SessionID: g.SessionID, NoTimestamp: true}, CauseMissingAttribute},
		"no session attribute":    {DisconnectOptions{}, CauseMissingAttribute},
		"user and session differ": {DisconnectOptions{SessionID: g.SessionID, UserName: pineB.Identity}, CauseSessionContextNotFound},
	} {
		r, err := send(t, das, enc(c.o, secret), secret)
		if err != nil || r.Code != radius.CodeDisconnectNAK || r.ErrorCause != c.cause {
			t.Errorf("%s: %+v %v, want NAK %d", name, r, err, c.cause)
		}
	}
	if _, n := upf.counts(); n != 0 {
		t.Fatal("a rejected Disconnect-Request removed rules")
	}

	// The real one: ACK, rules removed.
	valid := enc(DisconnectOptions{SessionID: g.SessionID, UserName: pineA.Identity, NASIdentifier: "pine-smf"}, secret)
	r, err := send(t, das, valid, secret)
	if err != nil || r.Code != radius.CodeDisconnectACK {
		t.Fatalf("Disconnect: %+v %v", r, err)
	}
	if _, n := upf.counts(); n != 1 || upf.removed[0] != 1 || a.Lookup(g.SessionID) != nil {
		t.Fatalf("removed %v", upf.removed)
	}

	// PINE A authenticates again; the earlier Disconnect-Request, replayed,
	// changes nothing (it gets its first answer back, unacted).
	g2 := admitted(t, a, upf)
	r, err = send(t, das, valid, secret)
	if err != nil || r.Code != radius.CodeDisconnectACK {
		t.Errorf("replay: %+v %v", r, err)
	}
	if _, n := upf.counts(); n != 1 || a.Lookup(g2.SessionID) == nil {
		t.Error("a replayed Disconnect-Request acted again")
	}
	if st := a.DisconnectStats(); st.Retransmissions != 1 {
		t.Errorf("stats %+v", st)
	}
	// A fresh request by User-Name ends the new session.
	r, err = send(t, das, enc(DisconnectOptions{UserName: pineA.Identity}, secret), secret)
	if err != nil || r.Code != radius.CodeDisconnectACK || a.Lookup(g2.SessionID) != nil {
		t.Errorf("by User-Name: %+v %v", r, err)
	}
}

// radclient, FreeRADIUS's own client, speaks to our listener: a real
// RADIUS implementation's Disconnect-Request (with Message-Authenticator
// and Event-Timestamp) is accepted.
func TestDisconnectFromRadclient(t *testing.T) {
	radclient, err := exec.LookPath("radclient")
	if err != nil {
		t.Skip("radclient missing (apt-get install freeradius-utils)")
	}
	aaa := freeradius.StartT(t, freeradius.Options{Secret: secret})
	a := newAuth(t, aaa.Addr, nil)
	das, err := a.ListenDisconnect("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upf := &fakeUPF{}
	g := admitted(t, a, upf)
	in := "Acct-Session-Id = \"" + g.SessionID + "\"\nUser-Name = \"" + pineA.Identity + "\"\n" +
		"Event-Timestamp = \"" + time.Now().UTC().Format("Jan _2 2006 15:04:05 UTC") + "\"\n" +
		"Message-Authenticator = 0x00\n"
	cmd := exec.Command(radclient, "-x", "-r", "1", "-t", "2", das.String(), "disconnect", secret)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.CombinedOutput()
	t.Logf("radclient:\n%s", out)
	if err != nil || !bytes.Contains(out, []byte("Disconnect-ACK")) {
		t.Fatalf("radclient: %v", err)
	}
	if _, n := upf.counts(); n != 1 {
		t.Error("rules not removed")
	}
}
