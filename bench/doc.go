// Package bench measures the XDP datapath with BPF_PROG_TEST_RUN, beside
// the floor programs that do the same parsing (F1) and the same forwarding
// work (F2) without any session or rule lookup, at 1 to 1,000,000 installed
// PINE rules. Everything lives in the package's tests:
//
//	go test -run '^$' -bench . -benchtime 20000x ./bench   # make bench
//	go test ./bench                                         # smoke test
//
// Method. The programs are loaded into the dptest namespace world and each
// one (the enforcer's, both floors and the XDP_PASS baseline) is attached to
// an interface of the UPF namespace, so the test run calls it the way the
// XDP dispatcher does in production. Test runs happen inside that namespace,
// so the FIB lookups see the world's routes and neighbours. Every sample is
// one run per program (repeat 1: a repeated run would work on the frame the
// first run already rewrote), round-robin over pass, F1, F2 and the
// enforcer with the order rotated per sample, on frames that cycle through
// a random sample of the installed rules. The kernel-measured time of the
// XDP_PASS baseline is subtracted from each program's. Every verdict is
// checked, and the datapath's reason counters must account for every run.
//
// The rule set is one PINE per rule: a UDP port on its session's UE IPv4
// address (a NAT'd PEGC), up to 1,000 rules per session. Uplink and
// downlink are measured with separate rule sets (BenchmarkUplink installs
// uplink rules, BenchmarkDownlink downlink ones), so "N rules" is the number
// of entries in the table when the scenario is measured.
//
// -bench.maxrules (or PINE_BENCH_MAXRULES) caps the rule counts.
package bench
