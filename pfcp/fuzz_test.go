package pfcp

import (
	"reflect"
	"testing"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// FuzzHandleMessage feeds raw bytes to an associated server with one
// session. It must not panic; bytes that do not decode must change
// nothing; the response cache stays bounded.
func FuzzHandleMessage(f *testing.F) {
	add := func(m message.Message) {
		b := make([]byte, m.MarshalLen())
		if err := m.MarshalTo(b); err == nil {
			f.Add(b)
		}
	}
	add(message.NewHeartbeatRequest(1, ie.NewRecoveryTimeStamp(rtsA), nil))
	add(message.NewAssociationSetupRequest(2, ie.NewNodeIDHeuristic("smf-a"), ie.NewRecoveryTimeStamp(rtsA)))
	add(message.NewSessionEstablishmentRequest(0, 0, 0, 3, 0, append([]*ie.IE{ie.NewNodeIDHeuristic("smf-a"),
		ie.NewFSEID(9, smfA.Addr().AsSlice(), nil)}, basic()...)...))
	add(message.NewSessionModificationRequest(0, 0, 1, 4, 0,
		pdr(10, 50, 0, []*ie.IE{chID(3), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 7000-7010")}, farID(1), qerID(1), urrID(1)),
		ie.NewCreateQER(qerID(1), ie.NewGateStatus(0, 1), ie.NewMBR(1, 2)),
		ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0), ie.NewReportingTriggers(3, 1), ie.NewVolumeThreshold(7, 1, 2, 3)),
		ie.NewUpdateFAR(farID(2), ie.NewApplyAction(actFORW), ie.NewUpdateForwardingParameters(ie.NewOuterHeaderCreation(0x100, 5, "192.168.1.9", "", 0, 0, 0)))))
	add(message.NewSessionDeletionRequest(0, 0, 1, 5, 0))
	add(message.NewPFDManagementRequest(6))
	add(message.NewAssociationReleaseRequest(7, ie.NewNodeIDHeuristic("smf-a")))
	add(message.NewSessionReportResponse(0, 0, 1, 8, 0, ie.NewCause(1)))

	f.Fuzz(func(t *testing.T, b []byte) {
		h := newHarness(t)
		h.associate(smfA, "smf-a", rtsA)
		seid := upSEID(t, h.establish(smfA, "smf-a", 9, basic()...))
		// Let the fuzzer's session requests name the session.
		if len(b) >= 12 && b[0]&1 != 0 && b[1] >= 50 {
			b = append([]byte(nil), b...)
			for i := range 8 {
				b[4+i] = byte(seid >> (56 - 8*i))
			}
		}
		before := h.snapshot()
		assocs := len(h.srv.assocs)
		resp := h.srv.HandleMessage(smfA, b)
		if _, err := message.Parse(b); err != nil || len(b) < 8 {
			if resp != nil && (len(b) < 8 || b[0]>>5 == 1) {
				t.Fatalf("undecodable message answered")
			}
			if !reflect.DeepEqual(before, h.snapshot()) || assocs != len(h.srv.assocs) {
				t.Fatalf("undecodable message changed state")
			}
		}
		if resp != nil {
			if _, err := message.Parse(resp); err != nil {
				t.Fatalf("response does not decode: %v", err)
			}
		}
		// Polls and heartbeats on whatever state resulted must not panic.
		h.srv.pollUsage()
		h.srv.heartbeatTick()
		if n := h.srv.Stats().HandlerPanics; n > 0 {
			t.Fatalf("handler panicked")
		}
		if h.srv.cache.len() > ResponseCacheSize {
			t.Fatal("response cache unbounded")
		}
	})
}
