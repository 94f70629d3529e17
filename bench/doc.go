// Package bench is pine-upf's throughput harness: three suites measured side
// by side in one run, driven by cmd/pine-bench (`make bench`), with the Go
// benchmarks and smoke tests beside them:
//
//	go run ./cmd/pine-bench [--quick|--smoke]     # make bench: JSON, Markdown, PNGs in bench/results
//	go run ./cmd/pine-bench compare OLD.json NEW.json
//	go test ./bench                               # smoke: every suite at tiny sizes
//	go test -run '^$' -bench Uplink ./bench       # one direction under the profiler
//
// Datapath (datapath.go). ns/packet under BPF_PROG_TEST_RUN for uplink and
// downlink, allowed and denied, IPv4 and IPv6, inner UDP payloads of 64,
// 512 and 1400 bytes, at 1 to 1,000,000 PINE rules (decades), beside the
// floor programs of the same object: F1 parses the same headers and drops,
// F2 parses and does the same forwarding (decap/encap, FIB lookup,
// redirect) without any session or rule lookup. The programs are loaded
// into the dptest namespace world and each one (the enforcer's, both
// floors and the XDP_PASS baseline) is attached to an interface of the UPF
// namespace, so the test run calls it the way the XDP dispatcher does in
// production; test runs happen inside that namespace, so the FIB lookups
// see the world's routes and neighbours. Every sample is one run per
// program (repeat 1: a repeated run would work on the frame the first run
// already rewrote), round-robin over pass, F1, F2 and the enforcer with the
// order rotated per sample, on frames that cycle through a random sample of
// the installed rules. The XDP_PASS baseline's time is subtracted from
// each program's. Every verdict is checked, the datapath's reason counters
// must account for every run, and the first forwarded frame is dissected.
// One PINE per rule: a UDP port on its session's PINE address (the UE IPv4
// address of a NAT'd PEGC, or ::1 in the session's delegated /64), 1,000
// rules per session; each direction and IP version has its own datapath.
//
// End to end (e2e.go, gen.c). A live-frame generator (xdp_gen run with
// BPF_F_TEST_XDP_LIVE_FRAMES in the gNB namespace, the context's ingress
// interface gnb0, verdict XDP_TX) sends GTP-U frames through the veth to
// N3, where pine-upf's xdp_n3 decapsulates and redirects them to N6; on the
// data network's end xdp_sink counts and drops them. The veths have one
// queue per CPU, and generator thread i is pinned to CPU i. The same
// trials with a plain redirect program on N3 (no parsing) give the
// reference rate; a mixed load alternates authorized frames with frames of
// a PINE without rule. The traffic programs are their own BPF object
// (bench/gen.go runs bpf2go, output committed like bpf/).
//
// Control plane (controlplane.go). pine-upf `run` as a child process in a
// namespace, driven by pfcp/smfsim over loopback: establishments per
// second (8 PINE PDRs each), add-a-PINE round trips, the time and the BPF
// map memory to reach 1,000,000 PINE rules over PFCP.
//
// Env (env.go) lets the fixtures, which take a testing.TB, run outside
// `go test`.
package bench
