package pfcp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

func TestAssociationSetup(t *testing.T) {
	h := newHarness(t)
	r := h.associate(smfA, "smf-a.example", rtsA)
	checkCause(t, r.Cause, nil, ie.CauseRequestAccepted, 0)
	if id, _ := r.NodeID.NodeID(); id != "10.0.0.100" {
		t.Errorf("node ID %q", id)
	}
	if ts, _ := r.RecoveryTimeStamp.RecoveryTimeStamp(); !ts.Equal(h.srv.rts) {
		t.Errorf("recovery time stamp %v, want %v", ts, h.srv.rts)
	}
	if r.UPFunctionFeatures == nil || !r.UPFunctionFeatures.HasFTUP() {
		t.Fatal("UP function features without FTUP")
	}
	if r.UPFunctionFeatures.HasUEIP() || r.UPFunctionFeatures.HasPFDM() || r.UPFunctionFeatures.HasBUCP() ||
		r.UPFunctionFeatures.HasQUOAC() || r.UPFunctionFeatures.HasSSET() {
		t.Error("advertises features not implemented")
	}
	if st := h.srv.Stats(); st.Associations != 1 || st.Causes[ie.CauseRequestAccepted] != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestAssociationSetupErrors(t *testing.T) {
	tests := []struct {
		name      string
		ies       []*ie.IE
		cause     uint8
		offending uint16
	}{
		{"no node ID", []*ie.IE{ie.NewRecoveryTimeStamp(rtsA)}, ie.CauseMandatoryIEMissing, ie.NodeID},
		{"no recovery time stamp", []*ie.IE{ie.NewNodeIDHeuristic("smf")}, ie.CauseMandatoryIEMissing, ie.RecoveryTimeStamp},
		{"bad node ID", []*ie.IE{ie.New(ie.NodeID, []byte{7}), ie.NewRecoveryTimeStamp(rtsA)}, ie.CauseMandatoryIEIncorrect, ie.NodeID},
		{"short recovery time stamp", []*ie.IE{ie.NewNodeIDHeuristic("smf"), ie.New(ie.RecoveryTimeStamp, []byte{1})}, ie.CauseMandatoryIEIncorrect, ie.RecoveryTimeStamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.do(smfA, message.NewAssociationSetupRequest(1, tt.ies...)).(*message.AssociationSetupResponse)
			checkCause(t, r.Cause, find(r.IEs, ie.OffendingIE), tt.cause, tt.offending)
			if r.NodeID == nil || r.RecoveryTimeStamp == nil {
				t.Error("response lacks Node ID or Recovery Time Stamp")
			}
			if h.srv.Stats().Associations != 0 {
				t.Error("association created")
			}
		})
	}
}

func TestForeignPeer(t *testing.T) {
	h := newHarness(t)
	// Association setup: answered with Request rejected.
	r := h.associate(stranger, "evil", rtsA)
	checkCause(t, r.Cause, nil, ie.CauseRequestRejected, 0)
	// Everything else: dropped.
	for _, m := range []message.Message{
		message.NewHeartbeatRequest(2, ie.NewRecoveryTimeStamp(rtsA), nil),
		message.NewSessionEstablishmentRequest(0, 0, 0, 3, 0, append([]*ie.IE{ie.NewNodeIDHeuristic("evil"), ie.NewFSEID(1, stranger.Addr().AsSlice(), nil)}, basic()...)...),
		message.NewSessionDeletionRequest(0, 0, 1, 4, 0),
	} {
		if resp := h.raw(stranger, marshal(t, m)); resp != nil {
			t.Errorf("%s from a foreign peer answered", m.MessageTypeName())
		}
	}
	st := h.srv.Stats()
	if st.RejectedPeers != 4 || st.Associations != 0 || st.Sessions != 0 || h.enf.installs != 0 {
		t.Errorf("stats %+v, installs %d", st, h.enf.installs)
	}
}

func TestDefaultAllowsOnlyLoopback(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedPeers = nil })
	if r := h.associate(netip.MustParseAddrPort("127.0.0.1:8805"), "smf", rtsA); causeOf(t, r.Cause) != ie.CauseRequestAccepted {
		t.Error("loopback refused")
	}
	if r := h.associate(smfA, "smf2", rtsA); causeOf(t, r.Cause) != ie.CauseRequestRejected {
		t.Error("non-loopback accepted")
	}
}

func TestAssociationUpdateRelease(t *testing.T) {
	h := newHarness(t)
	// Before association.
	u := h.do(smfA, message.NewAssociationUpdateRequest(1, ie.NewNodeIDHeuristic("smf-a"))).(*message.AssociationUpdateResponse)
	checkCause(t, u.Cause, nil, ie.CauseNoEstablishedPFCPAssociation, 0)
	rel := h.do(smfA, message.NewAssociationReleaseRequest(2, ie.NewNodeIDHeuristic("smf-a"))).(*message.AssociationReleaseResponse)
	checkCause(t, rel.Cause, nil, ie.CauseNoEstablishedPFCPAssociation, 0)

	h.associate(smfA, "smf-a", rtsA)
	u = h.do(smfA, message.NewAssociationUpdateRequest(3, ie.NewNodeIDHeuristic("smf-a"))).(*message.AssociationUpdateResponse)
	checkCause(t, u.Cause, nil, ie.CauseRequestAccepted, 0)
	u = h.do(smfA, message.NewAssociationUpdateRequest(4)).(*message.AssociationUpdateResponse)
	checkCause(t, u.Cause, find(u.IEs, ie.OffendingIE), ie.CauseMandatoryIEMissing, ie.NodeID)

	seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
	rel = h.do(smfA, message.NewAssociationReleaseRequest(5, ie.NewNodeIDHeuristic("smf-a"))).(*message.AssociationReleaseResponse)
	checkCause(t, rel.Cause, nil, ie.CauseRequestAccepted, 0)
	if _, ok := h.enf.sessions[seid]; ok {
		t.Error("session kept in the datapath after association release")
	}
	if st := h.srv.Stats(); st.Associations != 0 || st.Sessions != 0 || len(h.srv.teids) != 0 {
		t.Errorf("after release: %+v, teids %v", st, h.srv.teids)
	}
	// Session requests now: no association.
	d := h.delete(smfA, seid)
	checkCause(t, d.Cause, nil, ie.CauseNoEstablishedPFCPAssociation, 0)
}

func TestPeerRestartOnReassociation(t *testing.T) {
	h := newHarness(t)
	h.associate(smfA, "smf-a", rtsA)
	seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))

	// Same recovery time stamp: sessions kept.
	h.associate(smfA, "smf-a", rtsA)
	if _, ok := h.enf.sessions[seid]; !ok || h.srv.Stats().Sessions != 1 {
		t.Fatal("session purged on re-association with the same recovery time stamp")
	}
	// New recovery time stamp: the peer restarted, its sessions go.
	h.associate(smfA, "smf-a", rtsA.Add(time.Hour))
	if _, ok := h.enf.sessions[seid]; ok {
		t.Fatal("session kept after peer restart")
	}
	st := h.srv.Stats()
	if st.Sessions != 0 || st.PeerRestarts != 1 || st.Associations != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHeartbeatAnswered(t *testing.T) {
	h := newHarness(t)
	// Heartbeats need no association.
	r := h.do(smfA, message.NewHeartbeatRequest(7, ie.NewRecoveryTimeStamp(rtsA), nil)).(*message.HeartbeatResponse)
	if ts, err := r.RecoveryTimeStamp.RecoveryTimeStamp(); err != nil || !ts.Equal(h.srv.rts) {
		t.Errorf("heartbeat response RTS %v %v", ts, err)
	}
}

func TestHeartbeatRecoveryTimeStampChange(t *testing.T) {
	for _, purge := range []bool{false, true} {
		t.Run(map[bool]string{false: "weak evidence ignored", true: "PurgeOnPeerRestart"}[purge], func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.PurgeOnPeerRestart = purge })
			h.associate(smfA, "smf-a", rtsA)
			seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
			// A simulator sending the current time in every heartbeat.
			for i := range 3 {
				h.do(smfA, message.NewHeartbeatRequest(h.nextSeq(), ie.NewRecoveryTimeStamp(rtsA.Add(time.Duration(i+1)*time.Minute)), nil))
			}
			_, kept := h.enf.sessions[seid]
			if kept == purge {
				t.Fatalf("session kept=%t with PurgeOnPeerRestart=%t", kept, purge)
			}
		})
	}
}

// hbOut returns the heartbeat requests the server sent since the last call.
func (h *harness) hbOut() []*message.HeartbeatRequest {
	var out []*message.HeartbeatRequest
	rest := h.out[:0]
	for _, s := range h.out {
		if m, ok := s.msg.(*message.HeartbeatRequest); ok {
			out = append(out, m)
		} else {
			rest = append(rest, s)
		}
	}
	h.out = rest
	return out
}

func TestHeartbeatsSent(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HeartbeatInterval = time.Second; c.HeartbeatRetries = 2 })
	h.associate(smfA, "smf-a", rtsA)
	h.srv.heartbeatTick()
	hb := h.hbOut()
	if len(hb) != 1 {
		t.Fatalf("%d heartbeats sent", len(hb))
	}
	if ts, _ := hb[0].RecoveryTimeStamp.RecoveryTimeStamp(); !ts.Equal(h.srv.rts) {
		t.Errorf("heartbeat RTS %v", ts)
	}
	// A response with a wrong sequence number does not count.
	h.do(smfA, message.NewHeartbeatResponse(hb[0].Sequence()+100, ie.NewRecoveryTimeStamp(rtsA)))
	if a := h.srv.assocs["smf-a"]; a.hbAnswered {
		t.Fatal("unmatched heartbeat response accepted")
	}
	h.do(smfA, message.NewHeartbeatResponse(hb[0].Sequence(), ie.NewRecoveryTimeStamp(rtsA)))
	if a := h.srv.assocs["smf-a"]; !a.hbAnswered || a.hbOutstanding {
		t.Fatal("matching heartbeat response not taken")
	}
	if st := h.srv.Stats(); st.Unexpected != 1 {
		t.Errorf("unexpected responses %d", st.Unexpected)
	}
}

func TestPeerLost(t *testing.T) {
	tests := []struct {
		name       string
		purge      bool
		answered   bool // the peer answered one heartbeat before going silent
		wantLost   bool
		wantPurged bool
	}{
		{"never answered: never lost", true, false, false, false},
		{"lost, weak evidence ignored", false, true, true, false},
		{"lost, PurgeOnPeerRestart", true, true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.HeartbeatInterval = time.Second
				c.HeartbeatRetries = 3
				c.PurgeOnPeerRestart = tt.purge
			})
			h.associate(smfA, "smf-a", rtsA)
			seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
			h.srv.heartbeatTick()
			if tt.answered {
				hb := h.hbOut()
				h.do(smfA, message.NewHeartbeatResponse(hb[0].Sequence(), ie.NewRecoveryTimeStamp(rtsA)))
				h.srv.heartbeatTick()
			}
			for range 5 {
				h.srv.heartbeatTick()
			}
			st := h.srv.Stats()
			if lost := st.PeersLost > 0; lost != tt.wantLost {
				t.Errorf("lost %t, want %t", lost, tt.wantLost)
			}
			_, kept := h.enf.sessions[seid]
			if kept == tt.wantPurged {
				t.Errorf("session kept %t, want purged %t", kept, tt.wantPurged)
			}
			if tt.wantPurged && st.Associations != 0 {
				t.Error("lost peer's association kept")
			}
		})
	}
}

func TestUnsupportedRequests(t *testing.T) {
	h := newHarness(t)
	h.associate(smfA, "smf-a", rtsA)
	r1 := h.do(smfA, message.NewPFDManagementRequest(10)).(*message.PFDManagementResponse)
	checkCause(t, r1.Cause, r1.OffendingIE, ie.CauseServiceNotSupported, 0)
	r2 := h.do(smfA, message.NewNodeReportRequest(11, ie.NewNodeIDHeuristic("smf-a"))).(*message.NodeReportResponse)
	checkCause(t, r2.Cause, r2.OffendingIE, ie.CauseServiceNotSupported, 0)
	r3 := h.do(smfA, message.NewSessionSetDeletionRequest(12, ie.NewNodeIDHeuristic("smf-a"), nil)).(*message.SessionSetDeletionResponse)
	checkCause(t, r3.Cause, r3.OffendingIE, ie.CauseServiceNotSupported, 0)
	if r2.NodeID == nil || r3.NodeID == nil {
		t.Error("responses lack our Node ID")
	}
}

func TestVersionNotSupported(t *testing.T) {
	h := newHarness(t)
	b := marshal(t, message.NewHeartbeatRequest(5, ie.NewRecoveryTimeStamp(rtsA), nil))
	b[0] = b[0]&0x1f | 2<<5 // version 2
	r := h.raw(smfA, b)
	m, err := message.Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageType() != message.MsgTypeVersionNotSupportedResponse || m.Sequence() != 5 {
		t.Fatalf("got %s seq %d", m.MessageTypeName(), m.Sequence())
	}
}

func TestUnknownAndUnexpectedDropped(t *testing.T) {
	h := newHarness(t)
	b := marshal(t, message.NewHeartbeatRequest(5, ie.NewRecoveryTimeStamp(rtsA), nil))
	b[1] = 99
	if h.raw(smfA, b) != nil {
		t.Error("unknown type answered")
	}
	if h.raw(smfA, marshal(t, message.NewAssociationSetupResponse(6, ie.NewCause(1)))) != nil {
		t.Error("unsolicited response answered")
	}
	if h.raw(smfA, []byte{0x20, 1, 0}) != nil {
		t.Error("garbage answered")
	}
	st := h.srv.Stats()
	if st.UnknownType != 1 || st.Unexpected != 1 || st.Undecodable != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestServeUDP(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AllowedPeers = nil; c.HeartbeatInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx) }()
	<-h.srv.Ready()
	addr := h.srv.Addr().(*net.UDPAddr)
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := marshal(t, message.NewAssociationSetupRequest(1, ie.NewNodeIDHeuristic("smf"), ie.NewRecoveryTimeStamp(rtsA)))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Parse(buf[:n])
	if err != nil || m.MessageType() != message.MsgTypeAssociationSetupResponse {
		t.Fatalf("got %v %v", m, err)
	}
	// The server's own heartbeat arrives at the association's address.
	n, err = c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := message.Parse(buf[:n]); err != nil || m.MessageType() != message.MsgTypeHeartbeatRequest {
		t.Fatalf("got %v %v", m, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}
