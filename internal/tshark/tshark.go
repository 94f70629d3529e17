// Package tshark captures PFCP on loopback with Wireshark's tshark and
// decodes it with the real dissector, for tests that check our encoding.
// Without tshark (or the right to capture) tests skip — except under
// CI=true, where that is a failure.
package tshark

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Frame is one captured frame as the PFCP dissector saw it.
type Frame struct {
	Number    string
	PFCPType  string // decimal message type; "" when not decoded as PFCP
	Malformed string // non-empty when a field was malformed
	Severity  string // expert info severities, comma separated
	Expert    string // expert info messages
}

// IsError reports whether an expert info of error severity was raised.
func (f Frame) IsError() bool {
	for _, v := range strings.Split(f.Severity, ",") {
		v = strings.TrimSpace(v)
		if v == "8388608" || v == "0x00800000" || strings.EqualFold(v, "error") { // PI_ERROR
			return true
		}
	}
	return false
}

// Capture is a running capture of UDP traffic to or from a loopback port.
type Capture struct {
	t      testing.TB
	tshark string
	cmd    *exec.Cmd
	file   string
	port   string
}

func need(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

// Start captures udp port on lo until Stop; it returns once the capture
// filter is live.
func Start(t testing.TB, port uint16) *Capture {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		need(t, "tshark not installed (apt-get install tshark)")
	}
	c := &Capture{t: t, tshark: bin, port: strconv.Itoa(int(port)),
		file: filepath.Join(t.TempDir(), "pfcp.pcapng")}
	c.cmd = exec.Command(bin, "-i", "lo", "-f", "udp port "+c.port, "-w", c.file, "-a", "duration:120")
	stderr, _ := c.cmd.StderrPipe()
	if err := c.cmd.Start(); err != nil {
		need(t, "cannot start tshark: "+err.Error())
	}
	t.Cleanup(func() { c.cmd.Process.Kill() })
	ready := make(chan bool, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
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
			need(t, "tshark cannot capture on lo: "+log.String())
		}
	case <-time.After(15 * time.Second):
		need(t, "tshark did not start capturing")
	}
	time.Sleep(time.Second) // dumpcap says "Capturing on" before its filter is live
	return c
}

// Stop ends the capture and decodes it: every frame, and tshark -V's text.
func (c *Capture) Stop() ([]Frame, string) {
	c.t.Helper()
	time.Sleep(500 * time.Millisecond)
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.t.Fatal("tshark did not stop")
	}
	decodeAs := "udp.port==" + c.port + ",pfcp"
	out, err := exec.Command(c.tshark, "-r", c.file, "-d", decodeAs, "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "pfcp.msg_type", "-e", "_ws.malformed", "-e", "_ws.expert.severity",
		"-e", "_ws.expert.message").Output()
	if err != nil {
		c.t.Fatalf("tshark -r: %v", err)
	}
	var frames []Frame
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		frames = append(frames, Frame{Number: f[0], PFCPType: f[1], Malformed: f[2], Severity: f[3], Expert: f[4]})
	}
	verbose, err := exec.Command(c.tshark, "-r", c.file, "-d", decodeAs, "-V").Output()
	if err != nil {
		c.t.Fatalf("tshark -V: %v", err)
	}
	return frames, string(verbose)
}

// Check fails the test on frames not decoded as PFCP, malformed fields and
// error-severity expert infos, and returns the message types seen.
func Check(t testing.TB, frames []Frame) map[string]int {
	t.Helper()
	types := map[string]int{}
	for _, f := range frames {
		switch {
		case f.PFCPType == "":
			t.Errorf("frame %s was not decoded as PFCP", f.Number)
		case f.Malformed != "":
			t.Errorf("frame %s (PFCP type %s): malformed: %s", f.Number, f.PFCPType, f.Malformed)
		case f.IsError():
			t.Errorf("frame %s (PFCP type %s): expert error: %s", f.Number, f.PFCPType, f.Expert)
		case f.Severity != "":
			t.Logf("frame %s (PFCP type %s): expert info %s: %s", f.Number, f.PFCPType, f.Severity, f.Expert)
		}
		if f.PFCPType != "" {
			types[f.PFCPType]++
		}
	}
	if len(frames) == 0 {
		t.Error("nothing was captured")
	}
	return types
}
