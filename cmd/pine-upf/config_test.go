package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A configuration that passes validate (not the host checks).
const goodYAML = `
n3: {interface: n3, ipv4: 192.0.2.1}
n6: {interface: n6, ipv4: 198.51.100.1}
xdp_mode: generic
pfcp:
  listen: 127.0.0.1:8805
  allowed_peers: [127.0.0.0/8]
maps: {sessions: 1024, rules: 4096, qers: 1024}
pin_dir: ""
state_dir: /tmp/pine-upf-state
metrics: {listen: "127.0.0.1:0"}
`

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pine-upf.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = execute(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestGoodConfigValidates(t *testing.T) {
	cfg, err := loadConfigFile(writeConfig(t, goodYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	if p.n3v4.String() != "192.0.2.1" || p.PFCP.HeartbeatRetries != 3 || p.Events.LogPerSecond != 10 {
		t.Errorf("parsed %+v", p)
	}
}

// Each bad field is one clear line naming it, and exit status 2.
func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name    string
		replace [2]string // in goodYAML
		flags   []string
		want    string
	}{
		{"xdp mode", [2]string{"xdp_mode: generic", "xdp_mode: turbo"}, nil, `config: xdp_mode: "turbo" is neither native nor generic`},
		{"n3 ipv4", [2]string{"ipv4: 192.0.2.1", "ipv4: 192.0.2.300"}, nil, `config: n3.ipv4: "192.0.2.300" is not an IP address`},
		{"n3 ipv4 family", [2]string{"ipv4: 192.0.2.1", "ipv4: 2001:db8::1"}, nil, `config: n3.ipv4: 2001:db8::1 is not an IPv4 address`},
		{"n3 no address", [2]string{"ipv4: 192.0.2.1", "ipv4: ''"}, nil, `config: n3.ipv4: an N3 IPv4 or IPv6 address is required (F-TEIDs and encapsulation use it)`},
		{"n3 ipv6", nil2, []string{"--n3-ipv6", "192.0.2.7"}, `config: n3.ipv6: 192.0.2.7 is not an IPv6 address`},
		{"n3 interface missing", [2]string{"interface: n3,", "interface: '',"}, nil, `config: n3.interface: required`},
		{"n6 same as n3", nil2, []string{"--n6-interface", "n3"}, `config: n6.interface: "n3" is also the N3 interface`},
		{"interface name", nil2, []string{"--n6-interface", "a-very-long-interface-name"}, `config: n6.interface: "a-very-long-interface-name" is not a valid interface name`},
		{"pfcp listen", [2]string{"listen: 127.0.0.1:8805", "listen: localhost"}, nil, `config: pfcp.listen: "localhost" is not an ip:port address`},
		{"node id needed", nil2, []string{"--pfcp-listen", "0.0.0.0:8805"}, `config: pfcp.node_id: required when pfcp.listen is 0.0.0.0`},
		{"node id", nil2, []string{"--node-id", "not valid!"}, `config: pfcp.node_id: "not valid!" is neither an IP address nor an FQDN`},
		{"allowed peer", [2]string{"[127.0.0.0/8]", "[127.0.0.0/8, 10.0.0.0/99]"}, nil, `config: pfcp.allowed_peers[1]: "10.0.0.0/99" is not an address prefix`},
		{"heartbeat interval", nil2, []string{"--heartbeat-interval", "-1s"}, `config: pfcp.heartbeat_interval: -1s is negative`},
		{"heartbeat retries", nil2, []string{"--heartbeat-retries", "0"}, `config: pfcp.heartbeat_retries: 0 is outside 1..100`},
		{"sessions", [2]string{"sessions: 1024", "sessions: 0"}, nil, `config: maps.sessions: 0 is outside 1..10000000`},
		{"rules", nil2, []string{"--max-rules", "0"}, `config: maps.rules: 0 is outside 1..100000000`},
		{"qers", nil2, []string{"--max-qers", "1"}, `config: maps.qers: 1 is outside 2..10000000`},
		{"pine quota", nil2, []string{"--pine-quota", "5000"}, `config: pfcp.pine_quota: 5000 is outside 1..maps.rules (4096)`},
		{"pin dir relative", nil2, []string{"--pin-dir", "bpf/pine"}, `config: pin_dir: "bpf/pine" is not an absolute path`},
		{"state dir", nil2, []string{"--state-dir", ""}, `config: state_dir: required (the recovery time stamp and datapath snapshot live there)`},
		{"metrics", nil2, []string{"--metrics-listen", "localhost"}, `config: metrics.listen: "localhost" is not a host:port address`},
		{"log level", nil2, []string{"--log-level", "loud"}, `config: log.level: "loud" is not debug, info, warn or error`},
		{"log format", nil2, []string{"--log-format", "xml"}, `config: log.format: "xml" is neither text nor json`},
		{"unknown key", [2]string{"xdp_mode: generic", "xdp_mode: generic\nturbo: true"}, nil, `field turbo not found in type main.Config`},
		{"yaml type", [2]string{"sessions: 1024", "sessions: many"}, nil, `cannot unmarshal !!str ` + "`many`"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := goodYAML
			if c.replace != nil2 {
				if !strings.Contains(y, c.replace[0]) {
					t.Fatalf("test bug: %q not in the config", c.replace[0])
				}
				y = strings.Replace(y, c.replace[0], c.replace[1], 1)
			}
			args := append([]string{"run", "--config", writeConfig(t, y)}, c.flags...)
			code, _, stderr := runCLI(t, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2 (stderr %q)", code, stderr)
			}
			if strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q, want %q", stderr, c.want)
			}
			if c.replace == nil2 && !strings.HasPrefix(stderr, c.want) {
				t.Errorf("stderr %q does not start with %q", stderr, c.want)
			}
		})
	}
}

var nil2 [2]string

func TestBadPinDir(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "run", "--config", writeConfig(t, goodYAML),
		"--pin-dir", filepath.Join(dir, "pins"), "--state-dir", filepath.Join(dir, "state"))
	want := `config: pin_dir: "` + filepath.Join(dir, "pins") + `" is not on a bpffs (mount -t bpf bpf /sys/fs/bpf)` + "\n"
	if code != 2 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr, want)
	}
}

func TestMissingInterface(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, "run", "--config", writeConfig(t, goodYAML),
		"--n3-interface", "eth9", "--state-dir", dir)
	want := `config: n3.interface: "eth9": no such interface` + "\n"
	if code != 2 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr, want)
	}
	code, _, stderr = runCLI(t, "run", "--config", writeConfig(t, goodYAML),
		"--n3-interface", "lo", "--n6-interface", "nope9", "--state-dir", dir)
	want = `config: n6.interface: "nope9": no such interface` + "\n"
	if code != 2 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr, want)
	}
}

func TestAddressNotOnInterface(t *testing.T) {
	dir := t.TempDir()
	ifs, _ := net.Interfaces()
	other := ""
	for _, i := range ifs {
		if i.Name != "lo" {
			other = i.Name
		}
	}
	if other == "" {
		t.Skip("no interface besides lo")
	}
	code, _, stderr := runCLI(t, "run", "--config", writeConfig(t, goodYAML),
		"--n3-interface", "lo", "--n3-ipv4", "192.0.2.77", "--n6-interface", other, "--n6-ipv4", "", "--state-dir", dir)
	want := `config: n3.ipv4: 192.0.2.77 is not an address of lo` + "\n"
	if code != 2 || stderr != want {
		t.Errorf("exit %d, stderr %q; want 2, %q", code, stderr, want)
	}
}

func TestUnknownFlagAndVersion(t *testing.T) {
	if code, _, stderr := runCLI(t, "run", "--bogus"); code != 2 || !strings.Contains(stderr, "unknown flag: --bogus") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "pine-upf ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

func TestRecoveryTimeStampKept(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Unix(1_700_000_000, 0)
	ts, kept, err := recoveryTimeStamp(dir, false, t0)
	if err != nil || kept || !ts.Equal(t0) {
		t.Fatalf("first: %v %v %v", ts, kept, err)
	}
	ts, kept, err = recoveryTimeStamp(dir, false, t0.Add(time.Hour))
	if err != nil || !kept || !ts.Equal(t0) {
		t.Fatalf("restart: %v %v %v, want the first time stamp kept", ts, kept, err)
	}
	ts, kept, err = recoveryTimeStamp(dir, true, t0.Add(time.Hour))
	if err != nil || kept || !ts.Equal(t0.Add(time.Hour)) {
		t.Fatalf("fresh: %v %v %v, want a new time stamp", ts, kept, err)
	}
}
