// Command pine-demo is the demo's traffic side (scripts/demo.sh runs it):
//
//	pine-demo echo --listen 203.0.113.10:7
//	    a UDP and TCP echo server (run it in the data network namespace)
//	pine-demo scenario --gnb-netns NAME [flags]
//	    run in the UPF's namespace: as an SMF (package smfsim) associate,
//	    establish a PEGC session and authorize PINE A but not PINE B; as the
//	    gNB (a GTP-U socket opened in the gNB namespace) send both PINEs'
//	    traffic; read pine-upf's /metrics; print what happened; revoke A and
//	    show it dropped. Exit status 1 if anything was not as expected.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"
	"github.com/wmnsk/go-gtp/gtpv1/message"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth/demo"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pine-demo echo|scenario [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "echo":
		err = echoCmd(ctx, os.Args[2:])
	case "scenario":
		err = scenarioCmd(ctx, os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pine-demo:", err)
		os.Exit(1)
	}
}

func echoCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", "203.0.113.10:7", "UDP and TCP address")
	fs.Parse(args)
	uc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	tl, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		uc.Close()
		tl.Close()
	}()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				io.Copy(c, c)
			}()
		}
	}()
	fmt.Printf("echo server on udp and tcp %s\n", *listen)
	buf := make([]byte, 65536)
	for {
		n, from, err := uc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Printf("echo: %d bytes from %s\n", n, from)
		uc.WriteTo(buf[:n], from)
	}
}

type scenario struct {
	smf     *smfsim.Client
	sess    *smfsim.Session
	gnb     *net.UDPConn
	upfN3   netip.AddrPort
	ue      netip.Addr
	server  netip.AddrPort
	metrics string
	gnbTEID uint32
	rows    []row
	failed  bool
	timeout time.Duration
}

type row struct {
	step, pine, sent, result, reason, counters string
	ok                                         bool
}

func scenarioCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scenario", flag.ExitOnError)
	upf := fs.String("pfcp", "127.0.0.1:8805", "pine-upf's PFCP address")
	metrics := fs.String("metrics", "http://127.0.0.1:9464", "pine-upf's metrics base URL")
	gnbNS := fs.String("gnb-netns", "", "the gNB's network namespace (ip netns name)")
	gnbAddr := fs.String("gnb", "192.0.2.2", "the gNB's N3 address")
	n3 := fs.String("n3", "192.0.2.1", "pine-upf's N3 address")
	ue := fs.String("ue", "10.45.0.2", "the PEGC's UE address")
	server := fs.String("server", "203.0.113.10:7", "the data network's echo server")
	aaaDir := fs.String("aaa-config", "deploy/freeradius", "FreeRADIUS configuration of the DN-AAA the demo starts")
	fs.Parse(args)
	if *gnbNS == "" {
		return errors.New("--gnb-netns is required")
	}
	s := &scenario{
		upfN3: netip.AddrPortFrom(netip.MustParseAddr(*n3), 2152), ue: netip.MustParseAddr(*ue),
		server: netip.MustParseAddrPort(*server), metrics: *metrics, gnbTEID: 0x100, timeout: 2 * time.Second,
	}
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	var err error
	if s.gnb, err = listenIn(*gnbNS, netip.AddrPortFrom(netip.MustParseAddr(*gnbAddr), 2152)); err != nil {
		return fmt.Errorf("gNB socket in %s: %w", *gnbNS, err)
	}
	defer s.gnb.Close()

	if s.smf, err = smfsim.Dial(ctx, *upf, smfsim.Options{Timeout: time.Second}); err != nil {
		return err
	}
	defer s.smf.Close()
	up, _, err := s.smf.Associate(ctx)
	if err != nil {
		return fmt.Errorf("associate: %w", err)
	}
	fmt.Fprintf(out, "SMF: associated with UPF %s\n", up)
	s.sess, err = s.smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: s.ue, GNB: netip.MustParseAddr(*gnbAddr),
		GNBTEID: s.gnbTEID, Default: &smfsim.DefaultRule{Filter: "permit out 1 from any to assigned"}})
	if err != nil {
		return fmt.Errorf("establish: %w", err)
	}
	fmt.Fprintf(out, "SMF: PEGC session established: UE %s, N3 TEID %#x, the PEGC's own rule allows ICMP only\n", s.ue, s.sess.TEID)
	fmt.Fprintf(out, "SMF: PINEs behind it: A (UDP %d) and B (UDP %d), both denied until authenticated\n\n", demo.A.Port, demo.B.Port)

	// The TR 33.882 story: EAP-MD5 to a real DN-AAA (FreeRADIUS), rules
	// only on Access-Accept, revocation by RADIUS Disconnect-Request; after
	// every step both PINEs send through the gNB.
	s.echo()
	_, runErr := demo.Run(ctx, demo.Options{Session: s.sess, UEAddr: s.ue, AAAConfigDir: *aaaDir, Out: out,
		Probe: func(ctx context.Context, step string, p demo.PINE) (bool, error) {
			return s.send(step, p.Name, p.Port), nil
		}})
	fmt.Fprintln(out)

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPINE\tSENT (gNB, GTP-U)\tRESULT\tDROP REASON\tpine-upf /metrics\tOK")
	for _, r := range s.rows {
		ok := "yes"
		if !r.ok {
			ok = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.step, r.pine, r.sent, r.result, r.reason, r.counters, ok)
	}
	tw.Flush()

	if _, err := s.sess.Delete(ctx); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if err := s.smf.Release(ctx); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("the demo did not go as expected: %w", runErr)
	}
	if s.failed {
		return errors.New("the demo did not go as expected: counters disagree with what was delivered")
	}
	fmt.Fprintln(out, "\nall as expected")
	return nil
}

// listenIn opens a UDP socket inside a named network namespace; the socket
// stays there whatever thread uses it later.
func listenIn(nsName string, at netip.AddrPort) (*net.UDPConn, error) {
	type res struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromName(nsName)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
		ch <- res{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (s *scenario) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := http.Get(s.metrics + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pine-upf not ready at %s/readyz: %v", s.metrics, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *scenario) scrape() map[string]float64 {
	m := map[string]float64{}
	r, err := http.Get(s.metrics + "/metrics")
	if err != nil {
		return m
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

const (
	mFwdUL  = `pine_upf_datapath_packets_total{direction="uplink",reason="forward",verdict="forward"}`
	mFwdDL  = `pine_upf_datapath_packets_total{direction="downlink",reason="forward",verdict="forward"}`
	mNoRule = `pine_upf_datapath_drops_total{direction="uplink",reason="no_pine_rule"}`
	mEcho   = `pine_upf_gtpu_echo_total{message="response"}`
)

// recv waits for a GTP-U message of the type from pine-upf.
func (s *scenario) recv(typ uint8) (message.Message, bool) {
	buf := make([]byte, 4096)
	deadline := time.Now().Add(s.timeout)
	for {
		s.gnb.SetReadDeadline(deadline)
		n, _, err := s.gnb.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, false
		}
		m, err := message.Parse(append([]byte(nil), buf[:n]...))
		if err == nil && m.MessageType() == typ {
			return m, true
		}
	}
}

func (s *scenario) echo() {
	before := s.scrape()
	b, _ := message.NewEchoRequest(1).Marshal()
	s.gnb.WriteToUDPAddrPort(b, s.upfN3)
	m, ok := s.recv(message.MsgTypeEchoResponse)
	r := row{step: "GTP-U echo", pine: "-", sent: "Echo Request", reason: "-"}
	if ok {
		resp := m.(*message.EchoResponse)
		r.result = "Echo Response"
		if resp.Recovery != nil {
			r.result += " + Recovery IE"
		}
	} else {
		r.result = "no answer"
	}
	after := s.scrape()
	r.counters = fmt.Sprintf("gtpu_echo responses +%g", after[mEcho]-before[mEcho])
	r.ok = ok
	s.add(r)
}

// send has PINE pine send a packet through the gNB and reports whether the
// data network's answer came back; the row checks /metrics agrees.
func (s *scenario) send(step, pine string, sport uint16) bool {
	before := s.scrape()
	payload := fmt.Sprintf("hello from PINE %s", pine)
	s.gnb.WriteToUDPAddrPort(s.gpdu(sport, payload), s.upfN3)
	m, got := s.recv(message.MsgTypeTPDU)
	r := row{step: step, pine: pine, sent: fmt.Sprintf("UDP %s:%d -> %s", s.ue, sport, s.server)}
	if got {
		tp := m.(*message.TPDU)
		src, dport, body := innerUDP(tp.Decapsulate())
		r.result = fmt.Sprintf("echoed by the DN, back in GTP-U TEID %#x (from %s, to port %d)", tp.TEID(), src, dport)
		got = body == payload && tp.TEID() == s.gnbTEID
		r.reason = "-"
	} else {
		r.result = "dropped: no answer"
	}
	time.Sleep(100 * time.Millisecond)
	after := s.scrape()
	d := func(k string) float64 { return after[k] - before[k] }
	r.counters = fmt.Sprintf("forward UL +%g DL +%g, no_pine_rule +%g", d(mFwdUL), d(mFwdDL), d(mNoRule))
	if !got && d(mNoRule) > 0 {
		r.reason = "no_pine_rule"
	}
	if got {
		r.ok = d(mFwdUL) >= 1 && d(mFwdDL) >= 1
	} else {
		r.ok = d(mNoRule) >= 1
	}
	s.add(r)
	return got
}

func (s *scenario) add(r row) {
	if !r.ok {
		s.failed = true
	}
	s.rows = append(s.rows, r)
}

// gpdu builds a G-PDU (with a PDU Session Container, QFI 1) carrying a UDP
// packet of the PINE to the echo server.
func (s *scenario) gpdu(sport uint16, payload string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: s.ue.AsSlice(), DstIP: s.server.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(s.server.Port())}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, udp, gopacket.Payload(payload))
	psc := message.NewExtensionHeader(message.ExtHeaderTypePDUSessionContainer,
		[]byte{0x10, 1}, message.ExtHeaderTypeNoMoreExtensionHeaders)
	b, _ := message.NewTPDUWithExtentionHeader(s.sess.TEID, buf.Bytes(), psc).Marshal()
	return b
}

func innerUDP(b []byte) (src netip.Addr, dport uint16, payload string) {
	p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
	if ip, ok := p.NetworkLayer().(*layers.IPv4); ok {
		src, _ = netip.AddrFromSlice(ip.SrcIP)
	}
	if u, ok := p.TransportLayer().(*layers.UDP); ok {
		dport, payload = uint16(u.DstPort), string(u.Payload)
	}
	return src, dport, payload
}
