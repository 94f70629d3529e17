package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wmnsk/go-gtp/gtpv1/message"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
)

// Restart under traffic (TS 23.007 minded): while a gNB pushes G-PDUs of an
// authorized PINE (A) and an unauthorized one (B), the daemon — a real
// child process in the UPF namespace — is killed with SIGKILL and started
// again on the same pin and state directories. Every packet of A arrives,
// none of B; the new daemon answers with the same Recovery Time Stamp, and
// the SMF goes on modifying and deleting its session as if nothing
// happened.
func TestRestartUnderTraffic(t *testing.T) {
	w := dptest.NewWorld(t)
	w.DN.AddAddr(t, "lo", e2eServer.String()+"/32")
	w.DN.AddRoute(t, "10.45.0.0/16", dptest.N6v4.String(), "dn0")

	// `ip netns exec` remounts /sys, hiding /sys/fs/bpf: pin on a bpffs of
	// our own, outside /sys.
	var sfx [4]byte
	rand.Read(sfx[:])
	bpffs := "/run/pine-upf-test-" + hex.EncodeToString(sfx[:])
	if err := os.MkdirAll(bpffs, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "bpf", "bpf", bpffs).CombinedOutput(); err != nil {
		t.Fatalf("mount bpffs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("umount", "-l", bpffs).Run()
		os.Remove(bpffs)
	})
	pinDir := filepath.Join(bpffs, "pine-upf")
	stateDir := t.TempDir()

	bin := filepath.Join(t.TempDir(), "pine-upf")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(t.TempDir(), "pine-upf.yaml")
	cfgYAML := fmt.Sprintf(`n3: {interface: n3, ipv4: %s}
n6: {interface: n6, ipv4: %s}
xdp_mode: generic
pfcp: {listen: "127.0.0.1:8805", node_id: upf.test}
maps: {sessions: 1024, rules: 8192, qers: 1024}
pin_dir: %s
state_dir: %s
metrics: {listen: ""}
log: {level: info, format: text}
`, dptest.N3v4, dptest.N6v4, pinDir, stateDir)
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", logs.String())
		}
	})
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
		// What the killed daemons left pinned.
		enforcer.UnpinDir(pinDir)
	})
	start := func(run int) *exec.Cmd {
		t.Helper()
		fmt.Fprintf(logs, "---- daemon run %d ----\n", run)
		c := exec.Command("ip", "netns", "exec", w.UPF.Name, bin, "run", "-c", cfgPath, "--keep-datapath")
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
		return c
	}

	ctx := context.Background()
	d1 := start(1)
	var smf *smfsim.Client
	if err := w.UPF.Do(func() (err error) {
		smf, err = smfsim.Dial(ctx, "127.0.0.1:8805", smfsim.Options{Timeout: 500 * time.Millisecond})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer smf.Close()
	// heartbeat waits until the daemon answers and returns its Recovery
	// Time Stamp.
	heartbeat := func() time.Time {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, rts, err := smf.Heartbeat(ctx)
			if err == nil {
				return rts
			}
			if time.Now().After(deadline) {
				t.Fatalf("no heartbeat answer: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rts1 := heartbeat()
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	assocRTS := smf.PeerRecoveryTime()
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: e2eUE, GNB: dptest.GNBv4, GNBTEID: e2eGNBTEID,
		PINEs: []smfsim.PINE{{ID: 1, Addr: e2eUE, Proto: 17, Ports: []smfsim.PortRange{{Lo: portA, Hi: portA}}}}})
	if err != nil {
		t.Fatal(err)
	}

	// The data network counts what arrives, per source port (PINE).
	var rconn *net.UDPConn
	if err := w.DN.Do(func() (err error) {
		rconn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e2eServer, 9)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rconn.SetReadBuffer(16 << 20)
	t.Cleanup(func() { rconn.Close() })
	var mu sync.Mutex
	got := map[uint16]map[uint64]bool{portA: {}, portB: {}}
	var dups, foreign atomic.Uint64
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		for {
			n, from, err := rconn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, ok := got[from.Port()]
			if !ok || n < 8 || from.Addr().Unmap() != e2eUE {
				foreign.Add(1)
				continue
			}
			seq := binary.BigEndian.Uint64(buf[:8])
			mu.Lock()
			if m[seq] {
				dups.Add(1)
			}
			m[seq] = true
			mu.Unlock()
		}
	}()

	// The gNB sends A and B alternately, paced at 2 × 2,000 packets/s.
	var sconn *net.UDPConn
	if err := w.GNB.Do(func() (err error) {
		sconn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dptest.GNBv4, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sconn.Close() })
	sconn.SetWriteBuffer(4 << 20)
	n3 := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dptest.N3v4, GTPUPort))
	gpdu := func(sport uint16, seq uint64) []byte {
		payload := make([]byte, 64)
		binary.BigEndian.PutUint64(payload, seq)
		inner, err := pkt.Inner{IP: pkt.IP{Src: e2eUE, Dst: e2eServer}, Proto: pkt.UDP,
			SrcPort: sport, DstPort: 9, Payload: payload}.Build()
		if err != nil {
			panic(err)
		}
		psc := message.NewExtensionHeader(message.ExtHeaderTypePDUSessionContainer,
			[]byte{pkt.PDUTypeUL << 4, 1}, message.ExtHeaderTypeNoMoreExtensionHeaders)
		b, err := message.NewTPDUWithExtentionHeader(sess.TEID, inner.Bytes, psc).Marshal()
		if err != nil {
			panic(err)
		}
		return b
	}
	const (
		pps      = 2000 // per PINE
		tick     = 5 * time.Millisecond
		perTick  = pps * int(tick) / int(time.Second)
		maxSends = 60 * pps // bound: 60 s of traffic
	)
	var sent [2]atomic.Uint64 // A, B
	var sendErrs atomic.Uint64
	stopSend := make(chan struct{})
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for seq := uint64(0); seq < maxSends; {
			select {
			case <-stopSend:
				return
			case <-tk.C:
			}
			for range perTick {
				for i, port := range []uint16{portA, portB} {
					if _, err := sconn.WriteToUDP(gpdu(port, seq), n3); err != nil {
						sendErrs.Add(1)
						continue
					}
					sent[i].Add(1)
				}
				seq++
			}
		}
	}()

	// Traffic through the first daemon, then SIGKILL, a gap with no
	// daemon at all, and the second daemon.
	time.Sleep(time.Second)
	if err := d1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d1.Wait()
	killedAt := sent[0].Load()
	time.Sleep(500 * time.Millisecond)
	start(2)
	rts2 := heartbeat()
	restartedAt := sent[0].Load()
	time.Sleep(500 * time.Millisecond)

	// The SMF carries on: a modification (a new PINE) and, after the
	// traffic, the deletion, both accepted (no Cause 65).
	if err := sess.AddPINE(ctx, smfsim.PINE{ID: 2, Addr: e2eUE, Proto: 17,
		Ports: []smfsim.PortRange{{Lo: portA + 100, Hi: portA + 100}}}); err != nil {
		t.Errorf("modification after the restart: %v", err)
	}
	time.Sleep(time.Second)
	close(stopSend)
	<-sendDone
	time.Sleep(500 * time.Millisecond) // the last packets land

	rep, err := inspect(pinDir, stateDir, true)
	if err != nil {
		t.Fatalf("inspect after the restart: %v", err)
	}
	if len(rep.Sessions) != 1 || rep.Sessions[0].SEID != sess.UPSEID {
		t.Errorf("sessions after adoption: %+v, want the one of SEID %#x", rep.Sessions, sess.UPSEID)
	}
	if _, err := sess.Delete(ctx); err != nil {
		t.Errorf("deletion after the restart: %v", err)
	}
	if rts2 != rts1 || assocRTS != rts1 || rts1.IsZero() {
		t.Errorf("recovery time stamps: heartbeat before %v, association %v, heartbeat after restart %v: want one", rts1, assocRTS, rts2)
	}

	rconn.Close()
	<-recvDone
	mu.Lock()
	recvA, recvB := len(got[portA]), len(got[portB])
	var missing []uint64
	for seq := range sent[0].Load() {
		if !got[portA][seq] {
			missing = append(missing, seq)
		}
	}
	mu.Unlock()
	t.Logf("PINE A (authorized): sent %d, received %d; PINE B (unauthorized): sent %d, received %d; "+
		"SIGKILL after %d of A, second daemon answering after %d; send errors %d, duplicates %d, others %d",
		sent[0].Load(), recvA, sent[1].Load(), recvB, killedAt, restartedAt, sendErrs.Load(), dups.Load(), foreign.Load())
	if restartedAt <= killedAt {
		t.Errorf("no traffic sent while the daemon was down (killed at %d, back at %d)", killedAt, restartedAt)
	}
	if sendErrs.Load() != 0 {
		t.Errorf("%d send errors", sendErrs.Load())
	}
	if len(missing) > 0 {
		t.Errorf("%d authorized packets lost, first sequence numbers %v", len(missing), missing[:min(10, len(missing))])
	}
	if recvB != 0 {
		t.Errorf("%d unauthorized packets delivered", recvB)
	}
	if l := logs.String(); !strings.Contains(l, "adopted pinned datapath and PFCP state") {
		t.Errorf("the second daemon did not log the adoption")
	}
}
