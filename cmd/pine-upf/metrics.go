package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp"
)

const ns = "pine_upf"

// pfcpMessageNames bounds the "type" label to the PFCP message types.
var pfcpMessageNames = map[uint8]string{
	1: "heartbeat_request", 2: "heartbeat_response",
	3: "pfd_management_request", 4: "pfd_management_response",
	5: "association_setup_request", 6: "association_setup_response",
	7: "association_update_request", 8: "association_update_response",
	9: "association_release_request", 10: "association_release_response",
	11: "version_not_supported_response",
	12: "node_report_request", 13: "node_report_response",
	14: "session_set_deletion_request", 15: "session_set_deletion_response",
	50: "session_establishment_request", 51: "session_establishment_response",
	52: "session_modification_request", 53: "session_modification_response",
	54: "session_deletion_request", 55: "session_deletion_response",
	56: "session_report_request", 57: "session_report_response",
}

func pfcpTypeName(t uint8) string {
	if n, ok := pfcpMessageNames[t]; ok {
		return n
	}
	return "other"
}

// pfcpCauseNames names the causes (TS 29.244 8.2.1); the label is bounded
// by the 8-bit cause anyway.
var pfcpCauseNames = map[uint8]string{
	1: "request_accepted", 2: "more_usage_report_to_send", 64: "request_rejected",
	65: "session_context_not_found", 66: "mandatory_ie_missing", 67: "conditional_ie_missing",
	68: "invalid_length", 69: "mandatory_ie_incorrect", 70: "invalid_forwarding_policy",
	71: "invalid_f_teid_allocation_option", 72: "no_established_pfcp_association",
	73: "rule_creation_modification_failure", 74: "pfcp_entity_in_congestion",
	75: "no_resources_available", 76: "service_not_supported", 77: "system_failure",
	78: "redirection_requested",
}

func pfcpCauseName(c uint8) string {
	if n, ok := pfcpCauseNames[c]; ok {
		return n
	}
	return "cause_" + strconv.Itoa(int(c))
}

func verdictOf(r enforcer.Reason) string {
	switch r.Verdict() {
	case enforcer.XDPRedirect:
		return "forward"
	case enforcer.XDPDrop:
		return "drop"
	}
	return "pass"
}

// daemonCounters are the daemon's own counters, updated where things
// happen (never per datapath packet: those are read from the maps).
type daemonCounters struct {
	gtpEchoRequests, gtpEchoResponses, gtpOther, gtpMalformed  atomic.Uint64
	denyLogged, denySuppressed, denyQueueDropped, denyReceived atomic.Uint64
}

// collector reads the datapath and the PFCP server at scrape time.
type collector struct {
	enf      *enforcer.Enforcer
	srv      *pfcp.Server
	counters *daemonCounters
	snap     *store
	log      *slog.Logger

	packets, bytes, drops                             *prometheus.Desc
	kernelEvents, userEvents, denyReceived            *prometheus.Desc
	sessions, rules, ruleEntries, qers                *prometheus.Desc
	capacity, fill, memory                            *prometheus.Desc
	assocs, pfcpSessions, pfcpRx, pfcpTx, pfcpCauses  *prometheus.Desc
	pfcpDropped, pfcpRetrans, peerRestarts, peersLost *prometheus.Desc
	hbRTT                                             *prometheus.Desc
	gtpEcho, gtpOther, snapFailures, scrapeErrors     *prometheus.Desc
}

func newCollector(enf *enforcer.Enforcer, srv *pfcp.Server, c *daemonCounters, snap *store, log *slog.Logger) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
	}
	return &collector{
		enf: enf, srv: srv, counters: c, snap: snap, log: log,
		packets:      d("datapath_packets_total", "Packets seen by the XDP programs, by direction, verdict and reason.", "direction", "verdict", "reason"),
		bytes:        d("datapath_bytes_total", "Ingress frame bytes seen by the XDP programs, by direction, verdict and reason.", "direction", "verdict", "reason"),
		drops:        d("datapath_drops_total", "Packets dropped by the XDP programs, by direction and reason.", "direction", "reason"),
		kernelEvents: d("deny_events_kernel_total", "Deny events of the datapath: sent to user space, suppressed by the per-session rate limit, lost (ring full).", "outcome"),
		userEvents:   d("deny_events_userspace_total", "Deny events in the daemon: logged, suppressed by the log rate limit, dropped (queue full).", "outcome"),
		denyReceived: d("deny_events_received_total", "Deny events the daemon read from the datapath."),
		sessions:     d("sessions", "Sessions installed in the datapath."),
		rules:        d("pine_rules", "PINE rules installed in the datapath."),
		ruleEntries:  d("rule_entries", "Rule table entries in use (a port range may take several)."),
		qers:         d("qers", "Datapath QERs in use."),
		capacity:     d("map_capacity", "Capacity of the datapath tables.", "table"),
		fill:         d("map_fill_ratio", "Fill ratio (0..1) of the datapath tables.", "table"),
		memory:       d("map_memory_bytes", "Kernel memory (memlock) of each BPF map.", "map"),
		assocs:       d("pfcp_associations", "Active PFCP associations."),
		pfcpSessions: d("pfcp_sessions", "PFCP sessions."),
		pfcpRx:       d("pfcp_messages_received_total", "PFCP messages received, by message type.", "type"),
		pfcpTx:       d("pfcp_messages_sent_total", "PFCP messages sent, by message type.", "type"),
		pfcpCauses:   d("pfcp_responses_total", "PFCP responses sent, by cause.", "cause"),
		pfcpDropped:  d("pfcp_messages_dropped_total", "PFCP messages dropped, by reason.", "reason"),
		pfcpRetrans:  d("pfcp_retransmissions_total", "PFCP requests answered from the response cache."),
		peerRestarts: d("pfcp_peer_restarts_total", "PFCP peers found restarted (their sessions purged)."),
		peersLost:    d("pfcp_peers_lost_total", "PFCP peers counted as lost after unanswered heartbeats."),
		hbRTT:        d("pfcp_heartbeat_rtt_seconds", "Round-trip time of the last answered UPF heartbeat, by peer Node ID.", "node_id"),
		gtpEcho:      d("gtpu_echo_total", "GTP-U echo messages on N3 handled by the daemon.", "message"),
		gtpOther:     d("gtpu_control_messages_total", "Other GTP-U messages reaching the daemon (not echo), or malformed.", "kind"),
		snapFailures: d("snapshot_failures_total", "Failed saves of the PFCP and datapath state (the change is in force but would not survive a restart)."),
		scrapeErrors: d("scrape_errors_total", "Errors reading the datapath during this scrape.", "source"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	cnt := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	st, err := c.enf.Stats()
	statsErr := uint64(0)
	if err != nil {
		statsErr = 1
		c.log.Warn("metrics: read datapath stats", "err", err)
	} else {
		for d, byReason := range st.Packets {
			dir := enforcer.Direction(d).String()
			for r, v := range byReason {
				reason := enforcer.Reason(r)
				cnt(c.packets, v.Packets, dir, verdictOf(reason), reason.String())
				cnt(c.bytes, v.Bytes, dir, verdictOf(reason), reason.String())
				if reason.IsDrop() {
					cnt(c.drops, v.Packets, dir, reason.String())
				}
			}
		}
		cnt(c.kernelEvents, st.Events.Sent, "sent")
		cnt(c.kernelEvents, st.Events.Suppressed, "suppressed")
		cnt(c.kernelEvents, st.Events.Lost, "lost")
	}
	cnt(c.scrapeErrors, statsErr, "stats")
	cnt(c.userEvents, c.counters.denyLogged.Load(), "logged")
	cnt(c.userEvents, c.counters.denySuppressed.Load(), "suppressed")
	cnt(c.userEvents, c.counters.denyQueueDropped.Load(), "dropped")
	cnt(c.denyReceived, c.counters.denyReceived.Load())

	u := c.enf.Usage()
	gauge(c.sessions, float64(u.Sessions))
	gauge(c.rules, float64(u.Rules))
	gauge(c.ruleEntries, float64(u.RuleEntries))
	gauge(c.qers, float64(u.QERs))
	for _, t := range []struct {
		name    string
		n, capa int
	}{
		{"sessions", u.Sessions, u.MaxSessions},
		{"pine_rules", u.Rules, u.MaxRules},
		{"rule_entries", u.RuleEntries, u.MaxRuleEntries},
		{"qers", u.QERs, u.MaxQERs},
	} {
		gauge(c.capacity, float64(t.capa), t.name)
		if t.capa > 0 {
			gauge(c.fill, float64(t.n)/float64(t.capa), t.name)
		}
	}
	mem, err := c.enf.MapMemory()
	if err != nil {
		cnt(c.scrapeErrors, 1, "map_memory")
	} else {
		cnt(c.scrapeErrors, 0, "map_memory")
		for name, v := range mem {
			gauge(c.memory, float64(v), name)
		}
	}

	if c.srv != nil {
		ps := c.srv.Stats()
		gauge(c.assocs, float64(ps.Associations))
		gauge(c.pfcpSessions, float64(ps.Sessions))
		sum := func(m map[uint8]uint64, d *prometheus.Desc, name func(uint8) string) {
			agg := map[string]uint64{}
			for k, v := range m {
				agg[name(k)] += v
			}
			for k, v := range agg {
				cnt(d, v, k)
			}
		}
		sum(ps.Received, c.pfcpRx, pfcpTypeName)
		sum(ps.Sent, c.pfcpTx, pfcpTypeName)
		sum(ps.Causes, c.pfcpCauses, pfcpCauseName)
		cnt(c.pfcpDropped, ps.Undecodable, "undecodable")
		cnt(c.pfcpDropped, ps.UnknownType, "unknown_type")
		cnt(c.pfcpDropped, ps.Unexpected, "unexpected")
		cnt(c.pfcpDropped, ps.RejectedPeers, "rejected_peer")
		cnt(c.pfcpDropped, ps.VersionNotSupported, "version_not_supported")
		cnt(c.pfcpRetrans, ps.Retransmissions)
		cnt(c.peerRestarts, ps.PeerRestarts)
		cnt(c.peersLost, ps.PeersLost)
		for id, rtt := range ps.HeartbeatRTT {
			gauge(c.hbRTT, rtt.Seconds(), id)
		}
	}
	cnt(c.gtpEcho, c.counters.gtpEchoRequests.Load(), "request")
	cnt(c.gtpEcho, c.counters.gtpEchoResponses.Load(), "response")
	cnt(c.gtpOther, c.counters.gtpOther.Load(), "other")
	cnt(c.gtpOther, c.counters.gtpMalformed.Load(), "malformed")
	if c.snap != nil {
		cnt(c.snapFailures, c.snap.failed())
	}
}

// metricsHandler serves /metrics, /healthz and /readyz.
func metricsHandler(col *collector, ready func() (bool, string)) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(col,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, why := ready()
		if !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

func buildInfoCollector() prometheus.Collector {
	v := versionInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info", Help: "Build of the running daemon.",
		ConstLabels: prometheus.Labels{"version": v.Version, "commit": v.Commit, "go_version": v.GoVersion},
	})
	g.Set(1)
	return g
}
