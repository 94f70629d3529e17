// Package fakeupf is a tiny canned UPF for testing SMF-side PFCP code: a UDP
// loop that decodes every request with go-pfcp, records it and answers with
// canned responses (association, heartbeat, session establishment with
// UP-allocated F-TEIDs per CHOOSE ID, modification, deletion). It keeps no
// rules and enforces nothing. It can also send requests of its own
// (heartbeats, session reports) and collect the answers.
package fakeupf

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// UPF is the fake UPF.
type UPF struct {
	conn *net.UDPConn
	// Recovery is the Recovery Time Stamp it sends (whole seconds).
	Recovery time.Time

	mu        sync.Mutex
	got       []Received
	drop      map[uint8]int                           // message type -> how many more to drop (-1: all)
	override  func(m message.Message) message.Message // nil answer: the canned one
	answers   chan message.Message                    // responses to our own requests
	sessions  map[uint64]*fakeSession                 // by UP SEID
	nextSEID  uint64
	nextTEID  uint32
	usageOnDl []*ie.IE // usage reports for the next deletion response
	done      chan struct{}
	poke      bool
	seq       uint32
	errs      []error
}

// Received is a recorded request.
type Received struct {
	From netip.AddrPort
	Raw  []byte
	Msg  message.Message
	At   time.Time
}

type fakeSession struct {
	cpSEID uint64
	teid   uint32
	n3     netip.Addr
}

// New listens on addr ("" = 127.0.0.1:0) and starts answering.
func New(addr string) (*UPF, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	la, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	u := &UPF{
		conn: conn, Recovery: time.Now().Add(-time.Hour).Truncate(time.Second),
		drop: map[uint8]int{}, answers: make(chan message.Message, 16),
		sessions: map[uint64]*fakeSession{}, nextSEID: 0x5000, nextTEID: 0x100,
		done: make(chan struct{}),
	}
	go u.loop()
	return u, nil
}

func (u *UPF) errorf(format string, args ...any) {
	u.mu.Lock()
	u.errs = append(u.errs, fmt.Errorf(format, args...))
	u.mu.Unlock()
}

// Errors returns the protocol errors seen: undecodable messages from the
// SMF, requests missing IEs the canned answers need, marshal errors.
func (u *UPF) Errors() []error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]error(nil), u.errs...)
}

// SetPoke makes the UPF send, after each accepted Session Establishment, a
// Heartbeat Request and a Session Report Request (USAR, a usage report of URR
// 1, trigger PERIO) to the SMF; the answers are recorded like those of
// Request.
func (u *UPF) SetPoke(on bool) {
	u.mu.Lock()
	u.poke = on
	u.mu.Unlock()
}

func (u *UPF) nextSeq() uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seq = (u.seq + 1) & 0xffffff
	return u.seq
}

func (u *UPF) pokeSMF(to netip.AddrPort, cpSEID uint64) {
	time.Sleep(20 * time.Millisecond)
	u.sendTo(message.NewHeartbeatRequest(u.nextSeq(), ie.NewRecoveryTimeStamp(u.Recovery), nil), to)
	now := time.Now().Truncate(time.Second)
	u.sendTo(message.NewSessionReportRequest(0, 0, cpSEID, u.nextSeq(), 0,
		ie.NewReportType(0, 0, 1, 0),
		ie.NewUsageReportWithinSessionReportRequest(ie.NewURRID(1), ie.NewURSEQN(1),
			ie.NewUsageReportTrigger(0x01, 0x00, 0x00), // PERIO
			ie.NewStartTime(now.Add(-10*time.Second)), ie.NewEndTime(now),
			ie.NewVolumeMeasurement(0x3f, 1500, 1000, 500, 3, 2, 1))), to)
}

// Answers returns (and forgets) the responses the SMF sent to the UPF's own
// requests so far, when Request is not used.
func (u *UPF) Answers() []message.Message {
	var out []message.Message
	for {
		select {
		case m := <-u.answers:
			out = append(out, m)
		default:
			return out
		}
	}
}

// Close stops the UPF.
func (u *UPF) Close() error {
	err := u.conn.Close()
	<-u.done
	return err
}

// Addr is the listening address.
func (u *UPF) Addr() string { return u.conn.LocalAddr().String() }

func (u *UPF) loop() {
	defer close(u.done)
	buf := make([]byte, 65535)
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		raw := append([]byte(nil), buf[:n]...)
		m, err := message.Parse(raw)
		if err != nil {
			u.errorf("fake UPF: simulator sent undecodable message %x: %v", raw, err)
			continue
		}
		if isResponse(m.MessageType()) {
			select {
			case u.answers <- m:
			default:
			}
			continue
		}
		u.mu.Lock()
		u.got = append(u.got, Received{From: from, Raw: raw, Msg: m, At: time.Now()})
		if d := u.drop[m.MessageType()]; d != 0 {
			if d > 0 {
				u.drop[m.MessageType()] = d - 1
			}
			u.mu.Unlock()
			continue
		}
		ov := u.override
		u.mu.Unlock()
		var resp message.Message
		if ov != nil {
			resp = ov(m)
		}
		if resp == nil {
			resp = u.answer(m)
		}
		if resp == nil {
			continue
		}
		u.sendTo(resp, from)
		u.mu.Lock()
		poke := u.poke
		u.mu.Unlock()
		if er, ok := resp.(*message.SessionEstablishmentResponse); ok && poke && er.SEID() != 0 {
			go u.pokeSMF(from, er.SEID())
		}
	}
}

func (u *UPF) sendTo(m message.Message, to netip.AddrPort) {
	b := make([]byte, m.MarshalLen())
	if err := m.MarshalTo(b); err != nil {
		u.errorf("fake UPF marshal: %v", err)
		return
	}
	if _, err := u.conn.WriteToUDPAddrPort(b, to); err != nil {
		u.errorf("fake UPF send: %v", err)
	}
}

var accepted = ie.NewCause(ie.CauseRequestAccepted)

func isResponse(t uint8) bool {
	switch t {
	case message.MsgTypeHeartbeatResponse, message.MsgTypePFDManagementResponse,
		message.MsgTypeAssociationSetupResponse, message.MsgTypeAssociationUpdateResponse,
		message.MsgTypeAssociationReleaseResponse, message.MsgTypeVersionNotSupportedResponse,
		message.MsgTypeNodeReportResponse, message.MsgTypeSessionSetDeletionResponse,
		message.MsgTypeSessionEstablishmentResponse, message.MsgTypeSessionModificationResponse,
		message.MsgTypeSessionDeletionResponse, message.MsgTypeSessionReportResponse:
		return true
	}
	return false
}

func (u *UPF) answer(m message.Message) message.Message {
	seq := m.Sequence()
	switch m := m.(type) {
	case *message.AssociationSetupRequest:
		return message.NewAssociationSetupResponse(seq, ie.NewNodeID("127.0.0.1", "", ""), accepted,
			ie.NewRecoveryTimeStamp(u.Recovery), ie.NewUPFunctionFeatures(0x01, 0x00))
	case *message.AssociationReleaseRequest:
		return message.NewAssociationReleaseResponse(seq, ie.NewNodeID("127.0.0.1", "", ""), accepted)
	case *message.HeartbeatRequest:
		return message.NewHeartbeatResponse(seq, ie.NewRecoveryTimeStamp(u.Recovery))
	case *message.SessionEstablishmentRequest:
		f, err := m.CPFSEID.FSEID()
		if err != nil {
			u.errorf("fake UPF: CP F-SEID: %v", err)
			return nil
		}
		u.mu.Lock()
		u.nextSEID++
		up := u.nextSEID
		s := &fakeSession{cpSEID: f.SEID}
		u.sessions[up] = s
		u.mu.Unlock()
		ies := []*ie.IE{ie.NewNodeID("127.0.0.1", "", ""), accepted,
			ie.NewFSEID(up, net.IPv4(127, 0, 0, 1), nil)}
		ies = append(ies, u.created(s, m.CreatePDR)...)
		return message.NewSessionEstablishmentResponse(0, 0, f.SEID, seq, 0, ies...)
	case *message.SessionModificationRequest:
		u.mu.Lock()
		s := u.sessions[m.SEID()]
		u.mu.Unlock()
		if s == nil {
			return message.NewSessionModificationResponse(0, 0, 0, seq, 0, ie.NewCause(ie.CauseSessionContextNotFound))
		}
		ies := append([]*ie.IE{accepted}, u.created(s, m.CreatePDR)...)
		// A removed URR is reported with its final (here: zero) usage.
		for _, r := range m.RemoveURR {
			if id, err := r.URRID(); err == nil {
				ies = append(ies, ie.NewUsageReportWithinSessionModificationResponse(ie.NewURRID(id),
					ie.NewURSEQN(1), ie.NewUsageReportTrigger(0x00, 0x08, 0x00), // TERMR
					ie.NewVolumeMeasurement(0x3f, 0, 0, 0, 0, 0, 0)))
			}
		}
		return message.NewSessionModificationResponse(0, 0, s.cpSEID, seq, 0, ies...)
	case *message.SessionDeletionRequest:
		u.mu.Lock()
		s := u.sessions[m.SEID()]
		delete(u.sessions, m.SEID())
		usage := u.usageOnDl
		u.mu.Unlock()
		if s == nil {
			return message.NewSessionDeletionResponse(0, 0, 0, seq, 0, ie.NewCause(ie.CauseSessionContextNotFound))
		}
		return message.NewSessionDeletionResponse(0, 0, s.cpSEID, seq, 0, append([]*ie.IE{accepted}, usage...)...)
	}
	return nil
}

// created allocates F-TEIDs for Create PDRs with CH (one per CHOOSE ID and
// session) and returns the Created PDR IEs.
func (u *UPF) created(s *fakeSession, pdrs []*ie.IE) []*ie.IE {
	var out []*ie.IE
	for _, p := range pdrs {
		id, err := p.PDRID()
		if err != nil {
			u.errorf("fake UPF: PDR ID: %v", err)
			continue
		}
		pdi, err := p.FindByType(ie.PDI)
		if err != nil {
			u.errorf("fake UPF: Create PDR %d without PDI", id)
			continue
		}
		f, err := pdi.FTEID()
		if err != nil || !f.HasCh() {
			continue
		}
		u.mu.Lock()
		if s.teid == 0 {
			u.nextTEID++
			s.teid = u.nextTEID
			if f.HasIPv4() {
				s.n3 = netip.MustParseAddr("127.0.0.1")
			} else {
				s.n3 = netip.MustParseAddr("::1")
			}
		}
		teid, n3 := s.teid, s.n3
		u.mu.Unlock()
		var fteid *ie.IE
		if n3.Is4() {
			fteid = ie.NewFTEID(0x01, teid, n3.AsSlice(), nil, 0)
		} else {
			fteid = ie.NewFTEID(0x02, teid, nil, n3.AsSlice(), 0)
		}
		out = append(out, ie.NewCreatedPDR(ie.NewPDRID(id), fteid))
	}
	return out
}

// Requests returns the recorded requests of one message type (0: all).
func (u *UPF) Requests(typ uint8) []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []Received
	for _, r := range u.got {
		if typ == 0 || r.Msg.MessageType() == typ {
			out = append(out, r)
		}
	}
	return out
}

// Last returns the last recorded request of a type, or nil.
func (u *UPF) Last(typ uint8) message.Message {
	rs := u.Requests(typ)
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1].Msg
}

// Request sends a UPF-initiated request to an SMF and waits for an answer.
func (u *UPF) Request(to netip.AddrPort, m message.Message, timeout time.Duration) (message.Message, error) {
	u.sendTo(m, to)
	select {
	case r := <-u.answers:
		return r, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("fakeupf: no answer to %s", m.MessageTypeName())
	}
}

// SetOverride installs a function answering requests before the canned
// answers (return nil to fall back to them); nil removes it.
func (u *UPF) SetOverride(f func(m message.Message) message.Message) {
	u.mu.Lock()
	u.override = f
	u.mu.Unlock()
}

// SetDeletionUsage sets the Usage Report IEs of later Session Deletion
// Responses.
func (u *UPF) SetDeletionUsage(ies ...*ie.IE) {
	u.mu.Lock()
	u.usageOnDl = ies
	u.mu.Unlock()
}

// CPSEID returns the CP SEID of a session by UP SEID (0 if unknown).
func (u *UPF) CPSEID(up uint64) uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s := u.sessions[up]; s != nil {
		return s.cpSEID
	}
	return 0
}

// SetDrop makes the UPF ignore the next n requests of a type (-1: all).
func (u *UPF) SetDrop(typ uint8, n int) {
	u.mu.Lock()
	u.drop[typ] = n
	u.mu.Unlock()
}
