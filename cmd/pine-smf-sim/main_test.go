package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

func TestParsePINE(t *testing.T) {
	p, err := parsePINE("id=3,addr=10.45.0.2,proto=udp,ports=5000-5009,ports=6000,prec=10,mbr-ul=1M,mbr-dl=2k,gate=closed,threshold=5k")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != 3 || p.Addr.String() != "10.45.0.2" || p.Proto != 17 || len(p.Ports) != 2 || p.Ports[0] != (smfsim.PortRange{Lo: 5000, Hi: 5009}) ||
		p.Ports[1] != (smfsim.PortRange{Lo: 6000, Hi: 6000}) || p.Precedence != 10 || p.MBRUL != 1e6 || p.MBRDL != 2e3 || !p.GateClosed || p.VolumeThreshold != 5e3 {
		t.Errorf("%+v", p)
	}
	for _, bad := range []string{"addr=10.0.0.1", "id=1", "id=0,addr=10.0.0.1", "id=1,addr=x", "id=1,addr=10.0.0.1,ports=9-1", "id=1,addr=10.0.0.1,foo=1", "id=1,addr=10.0.0.1,gate=maybe"} {
		if _, err := parsePINE(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestScenarioAgainstFakeUPF(t *testing.T) {
	u, err := fakeupf.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	var out, errb bytes.Buffer
	rc := run([]string{"--upf", u.Addr(), "--json", "scenario", "--default-rule",
		"--pine", "id=1,addr=10.45.0.2,proto=17,ports=5000-5009", "--pine", "id=2,addr=10.45.0.2,proto=tcp,ports=80"}, &out, &errb)
	if rc != 0 {
		t.Fatalf("rc %d, stderr %s, stdout %s", rc, errb.String(), out.String())
	}
	var steps []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m["ok"] != true {
			t.Errorf("step failed: %s", line)
		}
		steps = append(steps, m["step"].(string))
	}
	want := "dial associate establish add-pine add-pine remove-pine remove-pine delete release"
	if got := strings.Join(steps, " "); got != want {
		t.Errorf("steps %q, want %q", got, want)
	}
	if n := len(u.Requests(message.MsgTypeSessionModificationRequest)); n != 4 {
		t.Errorf("%d modifications", n)
	}
	if !strings.Contains(out.String(), `"filter":"permit out 17 from any to 10.45.0.2 5000-5009"`) {
		t.Errorf("output lacks the flow description: %s", out.String())
	}
	for _, err := range u.Errors() {
		t.Error(err)
	}

	// A rejection is reported with its cause and exit status 1.
	u.SetOverride(func(m message.Message) message.Message {
		if m.MessageType() == message.MsgTypeAssociationSetupRequest {
			return message.NewAssociationSetupResponse(m.Sequence(), ie.NewCause(ie.CauseNoResourcesAvailable))
		}
		return nil
	})
	out.Reset()
	if rc := run([]string{"--upf", u.Addr(), "associate"}, &out, &errb); rc != 1 || !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), "No resources available") {
		t.Errorf("rc %d out %s", rc, out.String())
	}
	if rc := run([]string{"bogus"}, &out, &errb); rc != 2 {
		t.Errorf("unknown command rc %d", rc)
	}
}
