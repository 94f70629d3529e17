package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/wmnsk/go-gtp/gtpv1/ie"
	"github.com/wmnsk/go-gtp/gtpv1/message"

	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/internal/testnet"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
)

var (
	e2eUE     = netip.MustParseAddr("10.45.0.2")
	e2eServer = netip.MustParseAddr("203.0.113.10")
)

const (
	e2eGNBTEID = 0x100
	portA      = 5000 // PINE A: 5000-5009
	portB      = 6000 // PINE B: never authorized
)

// syncBuffer is a log sink tests read while the daemon writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonWorld is the namespace world set up for an in-process daemon: the
// DN answers on e2eServer and routes the UE pool back to N6; the config
// pins on a bpffs directory of its own and keeps state in a temp dir.
func daemonWorld(t *testing.T) (*dptest.World, Config) {
	t.Helper()
	w := dptest.NewWorld(t)
	w.DN.AddAddr(t, "lo", e2eServer.String()+"/32")
	w.DN.AddRoute(t, "10.45.0.0/16", dptest.N6v4.String(), "dn0")
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	var sfx [4]byte
	rand.Read(sfx[:])
	pinDir := filepath.Join(testnet.BPFFSPath, "pine-upf-test-"+hex.EncodeToString(sfx[:]))
	t.Cleanup(func() { os.RemoveAll(pinDir) })

	cfg := defaultConfig()
	cfg.N3 = IfaceConfig{Interface: "n3", IPv4: dptest.N3v4.String()}
	cfg.N6 = IfaceConfig{Interface: "n6", IPv4: dptest.N6v4.String()}
	cfg.XDPMode = "generic"
	cfg.PFCP.Listen = "127.0.0.1:0"
	cfg.PFCP.NodeID = "upf.test"
	cfg.Maps = MapsConfig{Sessions: 1024, Rules: 8192, QERs: 1024}
	cfg.PinDir, cfg.State, cfg.Metrics.Listen = pinDir, t.TempDir(), ""
	return w, cfg
}

// startDaemon runs a daemon in the world's UPF namespace (its sockets are
// made there) until stop or the end of the test; it returns once the
// daemon is ready.
func startDaemon(t *testing.T, w *dptest.World, p *parsed, opts runOptions, log *slog.Logger) (*daemon, func() error) {
	t.Helper()
	var d *daemon
	if err := w.UPF.Do(func() (err error) {
		d, err = newDaemon(p, opts, log)
		return err
	}); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.serve(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-served:
			return err
		case <-time.After(10 * time.Second):
			return fmt.Errorf("daemon did not stop")
		}
	}
	t.Cleanup(func() { stop() })
	waitFor(t, "PFCP", func() bool { ok, _ := d.ready(); return ok })
	return d, stop
}

// The daemon in a namespace world: an SMF (smfsim) authorizes PINE A and
// not PINE B; real GTP-U from the gNB namespace reaches the data network
// decapsulated for A only, the answer comes back encapsulated; a GTP-U echo
// is answered; /metrics counts it all; revoking A drops it.
func TestEndToEnd(t *testing.T) {
	w, cfg := daemonWorld(t)
	pinDir, stateDir := cfg.PinDir, cfg.State
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Log.Format = "json"
	p, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := newLogger(logs, p)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})

	d, stop := startDaemon(t, w, p, runOptions{}, log)
	ctx := context.Background()

	// HTTP into the UPF namespace: dial there.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = w.UPF.Do(func() error {
				c, err = net.DialTimeout(network, addr, 2*time.Second)
				return err
			})
			return c, err
		},
	}}
	base := "http://" + d.MetricsAddr().String()
	waitFor(t, "readyz", func() bool {
		r, err := hc.Get(base + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	if r, err := hc.Get(base + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", r, err)
	}

	// The SMF, in the UPF namespace over loopback.
	var smf *smfsim.Client
	if err := w.UPF.Do(func() (err error) {
		smf, err = smfsim.Dial(ctx, d.srv.Addr().String(), smfsim.Options{Timeout: time.Second})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer smf.Close()
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatalf("associate: %v", err)
	}
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{
		UEIPv4: e2eUE, GNB: dptest.GNBv4, GNBTEID: e2eGNBTEID,
		// The PEGC's own rule: ICMP only, so PINE ports without a rule
		// fall through to "no PINE rule".
		Default: &smfsim.DefaultRule{Filter: "permit out 1 from any to assigned"},
	})
	if err != nil {
		t.Fatalf("establish: %v", err)
	}
	if err := sess.AddPINE(ctx, smfsim.PINE{ID: 1, Addr: e2eUE, Proto: 17,
		Ports: []smfsim.PortRange{{Lo: portA, Hi: portA + 9}}}); err != nil {
		t.Fatalf("add PINE A: %v", err)
	}

	// The data network's UDP echo server and the gNB's GTP-U socket.
	echo := startEcho(t, w.DN, netip.AddrPortFrom(e2eServer, 7))
	gnb := openGNB(t, w.GNB, dptest.GNBv4)

	// PINE A: delivered decapsulated, the answer comes back encapsulated.
	gnb.sendGPDU(t, sess.TEID, portA, "hello from A")
	if got := echo.wait(1 * time.Second); got == nil || got.from != netip.AddrPortFrom(e2eUE, portA) || got.payload != "hello from A" {
		t.Fatalf("data network got %+v, want A's packet from %s:%d", got, e2eUE, portA)
	}
	dl := gnb.wait(t, 2*time.Second, func(m gtpMsg) bool { return m.typ == message.MsgTypeTPDU })
	if dl == nil {
		t.Fatal("no downlink G-PDU at the gNB")
	}
	if dl.teid != e2eGNBTEID {
		t.Errorf("downlink TEID %#x, want %#x", dl.teid, e2eGNBTEID)
	}
	if src, dst, sport, dport, payload := innerUDP(dl.payload); src != e2eServer || dst != e2eUE ||
		sport != 7 || dport != portA || payload != "hello from A" {
		t.Errorf("downlink inner packet %s:%d -> %s:%d %q", src, sport, dst, dport, payload)
	}

	// PINE B: dropped, never reaches the data network.
	gnb.sendGPDU(t, sess.TEID, portB, "hello from B")
	if got := echo.wait(500 * time.Millisecond); got != nil {
		t.Fatalf("PINE B reached the data network: %+v", got)
	}

	// GTP-U echo on N3.
	req, _ := message.NewEchoRequest(0x1234).Marshal()
	gnb.send(t, req)
	er := gnb.wait(t, 2*time.Second, func(m gtpMsg) bool { return m.typ == message.MsgTypeEchoResponse })
	if er == nil {
		t.Fatal("no echo response")
	}
	resp, err := message.ParseEchoResponse(er.raw)
	if err != nil || resp.Sequence() != 0x1234 || resp.Recovery == nil || resp.Recovery.Type != ie.Recovery {
		t.Errorf("echo response %+v, %v: want sequence 0x1234 with a Recovery IE", resp, err)
	}

	// /metrics counts it.
	m := scrape(t, hc, base)
	for _, c := range []struct {
		name string
		min  float64
	}{
		{`pine_upf_datapath_packets_total{direction="uplink",reason="forward",verdict="forward"}`, 1},
		{`pine_upf_datapath_packets_total{direction="downlink",reason="forward",verdict="forward"}`, 1},
		{`pine_upf_datapath_drops_total{direction="uplink",reason="no_pine_rule"}`, 1},
		{`pine_upf_datapath_packets_total{direction="uplink",reason="pass_control",verdict="pass"}`, 1},
		{`pine_upf_gtpu_echo_total{message="request"}`, 1},
		{`pine_upf_gtpu_echo_total{message="response"}`, 1},
		{`pine_upf_pfcp_associations`, 1},
		{`pine_upf_sessions`, 1},
		{`pine_upf_pine_rules`, 3},
		{`pine_upf_pfcp_messages_received_total{type="session_modification_request"}`, 1},
		{`pine_upf_pfcp_responses_total{cause="request_accepted"}`, 3},
		{`pine_upf_deny_events_kernel_total{outcome="sent"}`, 1},
	} {
		if v, ok := m[c.name]; !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want >= %v", c.name, v, ok, c.min)
		}
	}
	for name := range m {
		if strings.Contains(name, "seid=") || strings.Contains(name, "teid=") || strings.Contains(name, "pine=") {
			t.Errorf("per-session label in %s", name)
		}
	}
	waitFor(t, "deny event logged", func() bool { return strings.Contains(logs.String(), `"reason":"no_pine_rule"`) })

	// inspect, beside the running daemon.
	rep, err := inspect(pinDir, stateDir, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Sessions) != 1 {
		t.Fatalf("inspect: %d sessions", len(rep.Sessions))
	}
	var aPackets uint64
	for _, r := range rep.Sessions[0].Rules {
		if r.Ports == fmt.Sprintf("%d-%d", portA, portA+9) && r.Direction == "uplink" {
			aPackets = r.Usage.Packets
		}
	}
	if aPackets != 1 {
		t.Errorf("inspect: PINE A uplink rule counted %d packets, want 1: %+v", aPackets, rep.Sessions[0].Rules)
	}
	var out bytes.Buffer
	printReport(&out, rep)
	t.Logf("inspect:\n%s", out.String())

	// Revoke A: now dropped too.
	if _, err := sess.RemovePINE(ctx, 1); err != nil {
		t.Fatalf("remove PINE A: %v", err)
	}
	gnb.sendGPDU(t, sess.TEID, portA, "A again")
	if got := echo.wait(500 * time.Millisecond); got != nil {
		t.Fatalf("revoked PINE A reached the data network: %+v", got)
	}
	m = scrape(t, hc, base)
	if v := m[`pine_upf_datapath_drops_total{direction="uplink",reason="no_pine_rule"}`]; v < 2 {
		t.Errorf("no_pine_rule drops %v after revoking A, want >= 2", v)
	}

	if err := stop(); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if ents, _ := os.ReadDir(pinDir); len(ents) != 0 {
		t.Errorf("pins left after shutdown: %v", ents)
	}
	// The recovery time stamp survives for the next run.
	if _, err := os.Stat(filepath.Join(stateDir, recoveryFile)); err != nil {
		t.Error(err)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads /metrics into "name{labels}" → value (labels as exposed).
func scrape(t *testing.T, hc *http.Client, base string) map[string]float64 {
	t.Helper()
	r, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

type echoed struct {
	from    netip.AddrPort
	payload string
}

type echoServer struct{ got chan echoed }

// startEcho runs a UDP echo server in a namespace.
func startEcho(t *testing.T, ns *testnet.NS, at netip.AddrPort) *echoServer {
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := &echoServer{got: make(chan echoed, 16)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			conn.WriteToUDPAddrPort(buf[:n], from)
			select {
			case e.got <- echoed{netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), string(buf[:n])}:
			default:
			}
		}
	}()
	return e
}

func (e *echoServer) wait(d time.Duration) *echoed {
	select {
	case g := <-e.got:
		return &g
	case <-time.After(d):
		return nil
	}
}

type gtpMsg struct {
	typ     uint8
	teid    uint32
	payload []byte // T-PDU
	raw     []byte
}

type gnbSide struct {
	conn *net.UDPConn
	upf  netip.AddrPort
	msgs chan gtpMsg
}

// openGNB binds GTP-U in the gNB namespace: the kernel there builds the
// outer headers and the frames cross the N3 veth for real.
func openGNB(t *testing.T, ns *testnet.NS, addr netip.Addr) *gnbSide {
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, GTPUPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g := &gnbSide{conn: conn, upf: netip.AddrPortFrom(dptest.N3v4, GTPUPort), msgs: make(chan gtpMsg, 16)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := append([]byte(nil), buf[:n]...)
			msg, err := message.Parse(raw)
			if err != nil {
				continue
			}
			gm := gtpMsg{typ: msg.MessageType(), teid: msg.TEID(), raw: raw}
			if tp, ok := msg.(*message.TPDU); ok {
				gm.payload = tp.Decapsulate()
			}
			select {
			case g.msgs <- gm:
			default:
			}
		}
	}()
	return g
}

func (g *gnbSide) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := g.conn.WriteToUDPAddrPort(b, g.upf); err != nil {
		t.Fatal(err)
	}
}

// sendGPDU sends a UDP packet of the PINE at the UE address and sport to
// the echo server, in a G-PDU with a PDU Session Container (QFI 1).
func (g *gnbSide) sendGPDU(t *testing.T, teid uint32, sport uint16, payload string) {
	t.Helper()
	inner, err := pkt.Inner{IP: pkt.IP{Src: e2eUE, Dst: e2eServer}, Proto: pkt.UDP,
		SrcPort: sport, DstPort: 7, Payload: []byte(payload)}.Build()
	if err != nil {
		t.Fatal(err)
	}
	psc := message.NewExtensionHeader(message.ExtHeaderTypePDUSessionContainer,
		[]byte{pkt.PDUTypeUL << 4, 1}, message.ExtHeaderTypeNoMoreExtensionHeaders)
	b, err := message.NewTPDUWithExtentionHeader(teid, inner.Bytes, psc).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g.send(t, b)
}

func (g *gnbSide) wait(t *testing.T, d time.Duration, match func(gtpMsg) bool) *gtpMsg {
	timeout := time.After(d)
	for {
		select {
		case m := <-g.msgs:
			if match(m) {
				return &m
			}
		case <-timeout:
			return nil
		}
	}
}

func innerUDP(b []byte) (src, dst netip.Addr, sport, dport uint16, payload string) {
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	}
	if u, ok := p.TransportLayer().(*layers.UDP); ok {
		sport, dport, payload = uint16(u.SrcPort), uint16(u.DstPort), string(u.Payload)
	}
	return src.Unmap(), dst.Unmap(), sport, dport, payload
}

func netip4(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
