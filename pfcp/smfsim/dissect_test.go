package smfsim

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
	"github.com/wmnsk/go-pfcp/message"
)

// needTshark skips the test when tshark (or capturing) is unavailable,
// except under CI=true, where that is a failure.
func needTshark(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

// TestTsharkDissect captures the simulator's traffic with a fake UPF on
// loopback and requires Wireshark's PFCP dissector to decode every message
// without a malformed field or an error-severity expert info.
func TestTsharkDissect(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		needTshark(t, "tshark not installed (apt-get install tshark)")
	}
	u, err := fakeupf.New("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetPoke(true)
	port := netip.MustParseAddrPort(u.Addr()).Port()
	portS := strconv.Itoa(int(port))

	dir := t.TempDir()
	if d := os.Getenv("PFCP_DISSECT_OUT"); d != "" {
		dir = d
	}
	capFile := filepath.Join(dir, "smfsim.pcapng")
	capCmd := exec.Command(tshark, "-i", "lo", "-f", "udp port "+portS, "-w", capFile, "-a", "duration:60")
	stderr, _ := capCmd.StderrPipe()
	if err := capCmd.Start(); err != nil {
		needTshark(t, "cannot start tshark: "+err.Error())
	}
	defer capCmd.Process.Kill()
	ready := make(chan bool, 1)
	var capLog strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			capLog.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "Capturing on") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			needTshark(t, "tshark cannot capture on lo: "+capLog.String())
		}
	case <-time.After(15 * time.Second):
		needTshark(t, "tshark did not start capturing")
	}

	// dumpcap reports "Capturing on" slightly before the filter is live.
	time.Sleep(time.Second)
	runDissectScenario(t, u)

	time.Sleep(500 * time.Millisecond)
	_ = capCmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- capCmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tshark did not stop")
	}

	decodeAs := "udp.port==" + portS + ",pfcp"
	out, err := exec.Command(tshark, "-r", capFile, "-d", decodeAs, "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "pfcp.msg_type", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
		"-e", "_ws.expert.message").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	frames, pfcpFrames := 0, 0
	types := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		frames++
		if f[1] != "" {
			pfcpFrames++
			types[f[1]]++
		}
		if f[2] != "" {
			t.Errorf("frame %s (PFCP type %s): malformed: %s", f[0], f[1], f[2])
		}
		if f[3] != "" {
			if isErrorSeverity(f[3]) {
				t.Errorf("frame %s (PFCP type %s): expert error: %s", f[0], f[1], f[4])
			} else {
				t.Logf("frame %s (PFCP type %s): expert info %s: %s", f[0], f[1], f[3], f[4])
			}
		}
	}
	verbose, err := exec.Command(tshark, "-r", capFile, "-d", decodeAs, "-V").Output()
	if err != nil {
		t.Fatalf("tshark -V: %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "smfsim-dissect.txt"), verbose, 0o644)
	if frames == 0 || pfcpFrames != frames {
		t.Fatalf("%d frames, %d decoded as PFCP", frames, pfcpFrames)
	}
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
		if !strings.Contains(string(verbose), s) {
			t.Errorf("dissection lacks %q", s)
		}
	}
	t.Logf("tshark decoded %d PFCP messages, types %v, no malformed fields, no expert errors; capture in %s", pfcpFrames, types, capFile)
}

func isErrorSeverity(s string) bool {
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		// Numeric PI_ERROR (0x00800000) or its name.
		if v == "8388608" || v == "0x00800000" || strings.EqualFold(v, "error") {
			return true
		}
	}
	return false
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
