package smfsim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// Defaults of Options.
const (
	DefaultTimeout     = 3 * time.Second // T1
	DefaultRetries     = 3               // N1
	DefaultReportQueue = 256
	// answeredTTL is how long answers to UPF-initiated requests are kept to
	// answer retransmissions of the same request without acting twice.
	answeredTTL = 30 * time.Second
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// NodeID is the Node ID sent in PFCP messages: an IPv4 or IPv6 address
	// or an FQDN. Default: the IP address of the local socket.
	NodeID string
	// LocalAddr is the local UDP address to bind ("ip:port"). Default: the
	// source address the kernel routes toward the UPF, with an ephemeral
	// port. A UPF that sends its own requests (heartbeats, reports) to port
	// 8805 of the SMF rather than to the port the association came from
	// needs LocalAddr "ip:8805".
	LocalAddr string
	// Logger receives protocol events; default: discard.
	Logger *slog.Logger
	// Timeout is the retransmission timer T1 (default 3s).
	Timeout time.Duration
	// Retries is N1, the number of retransmissions after the first attempt
	// (0: default 3; negative: none).
	Retries int
	// RecoveryTime is the Recovery Time Stamp of this SMF (default: Dial time).
	RecoveryTime time.Time
	// CPFeatures are the octets of the CP Function Features IE sent in the
	// Association Setup Request (default one zero octet: no optional feature).
	CPFeatures []byte
	// ReportQueue is the capacity of the Reports channel (default 256). A
	// report that does not fit is still answered, but dropped and logged.
	ReportQueue int
}

// Client is a simulated SMF: one UDP socket toward one UPF, one reader
// goroutine. All methods are safe for concurrent use.
type Client struct {
	conn     *net.UDPConn
	upf      netip.AddrPort
	local    netip.AddrPort
	nodeID   string
	recovery time.Time
	log      *slog.Logger
	timeout  time.Duration
	retries  int
	cpFeat   []byte
	reports  chan Report

	mu           sync.Mutex
	seq          uint32
	pending      map[uint32]*pending
	sessions     map[uint64]*Session // by CP SEID
	nextSEID     uint64
	associated   bool
	peerRecovery time.Time
	answered     map[answerKey]answer

	closed    chan struct{}
	closeOnce sync.Once
	readDone  chan struct{}
}

type pending struct {
	want uint8 // expected response message type
	ch   chan message.Message
}

type answerKey struct {
	from netip.AddrPort
	seq  uint32
	typ  uint8
}

type answer struct {
	b  []byte
	at time.Time
}

// Dial opens the socket toward upf ("host:port") and starts the reader. It
// does not send anything; call Associate next.
func Dial(ctx context.Context, upf string, opts Options) (*Client, error) {
	var d net.Dialer
	probe, err := d.DialContext(ctx, "udp", upf)
	if err != nil {
		return nil, fmt.Errorf("smfsim: resolve UPF %q: %w", upf, err)
	}
	upfAP := probe.RemoteAddr().(*net.UDPAddr).AddrPort()
	routed := probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	probe.Close()
	upfAP = netip.AddrPortFrom(upfAP.Addr().Unmap(), upfAP.Port())

	laddr := &net.UDPAddr{IP: routed.AsSlice()}
	if opts.LocalAddr != "" {
		if laddr, err = net.ResolveUDPAddr("udp", opts.LocalAddr); err != nil {
			return nil, fmt.Errorf("smfsim: local address %q: %w", opts.LocalAddr, err)
		}
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("smfsim: listen %s: %w", laddr, err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(routed.Unmap(), local.Port())
	}

	c := &Client{
		conn:     conn,
		upf:      upfAP,
		local:    local,
		nodeID:   opts.NodeID,
		recovery: opts.RecoveryTime,
		log:      opts.Logger,
		timeout:  opts.Timeout,
		retries:  opts.Retries,
		cpFeat:   opts.CPFeatures,
		pending:  map[uint32]*pending{},
		sessions: map[uint64]*Session{},
		answered: map[answerKey]answer{},
		closed:   make(chan struct{}),
		readDone: make(chan struct{}),
	}
	if c.nodeID == "" {
		c.nodeID = local.Addr().String()
	}
	if c.recovery.IsZero() {
		c.recovery = time.Now()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.cpFeat == nil {
		c.cpFeat = []byte{0}
	}
	q := opts.ReportQueue
	if q <= 0 {
		q = DefaultReportQueue
	}
	c.reports = make(chan Report, q)
	c.seq = randUint32() & 0xffffff
	c.nextSEID = uint64(randUint32())<<16 | 1

	go c.readLoop()
	c.log.Info("pfcp client ready", "local", c.local, "upf", c.upf, "node_id", c.nodeID)
	return c, nil
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// LocalAddr is the bound local address.
func (c *Client) LocalAddr() netip.AddrPort { return c.local }

// UPFAddr is the UPF's address.
func (c *Client) UPFAddr() netip.AddrPort { return c.upf }

// NodeID is the Node ID this client sends.
func (c *Client) NodeID() string { return c.nodeID }

// RecoveryTime is this SMF's Recovery Time Stamp.
func (c *Client) RecoveryTime() time.Time { return c.recovery }

// PeerRecoveryTime is the UPF's last seen Recovery Time Stamp (zero before
// association).
func (c *Client) PeerRecoveryTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerRecovery
}

// Reports delivers the Session Report Requests received from the UPF (each
// already answered). The channel is closed by Close.
func (c *Client) Reports() <-chan Report { return c.reports }

// Close stops the reader and closes the socket and the Reports channel. It
// sends nothing: call Release first for an orderly end.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.conn.Close()
		<-c.readDone
		close(c.reports)
	})
	return err
}

func (c *Client) nodeIDIE() *ie.IE {
	if a, err := netip.ParseAddr(c.nodeID); err == nil {
		if a.Unmap().Is4() {
			return ie.NewNodeID(a.Unmap().String(), "", "")
		}
		return ie.NewNodeID("", a.String(), "")
	}
	return ie.NewNodeID("", "", c.nodeID)
}

// fseidIE is the CP F-SEID of a session: the SEID and the local address.
func (c *Client) fseidIE(seid uint64) *ie.IE {
	a := c.local.Addr()
	if a.Is4() {
		return ie.NewFSEID(seid, a.AsSlice(), nil)
	}
	return ie.NewFSEID(seid, nil, a.AsSlice())
}

// responseType maps request types to their response types.
var responseType = map[uint8]uint8{
	message.MsgTypeHeartbeatRequest:            message.MsgTypeHeartbeatResponse,
	message.MsgTypePFDManagementRequest:        message.MsgTypePFDManagementResponse,
	message.MsgTypeAssociationSetupRequest:     message.MsgTypeAssociationSetupResponse,
	message.MsgTypeAssociationUpdateRequest:    message.MsgTypeAssociationUpdateResponse,
	message.MsgTypeAssociationReleaseRequest:   message.MsgTypeAssociationReleaseResponse,
	message.MsgTypeNodeReportRequest:           message.MsgTypeNodeReportResponse,
	message.MsgTypeSessionSetDeletionRequest:   message.MsgTypeSessionSetDeletionResponse,
	message.MsgTypeSessionEstablishmentRequest: message.MsgTypeSessionEstablishmentResponse,
	message.MsgTypeSessionModificationRequest:  message.MsgTypeSessionModificationResponse,
	message.MsgTypeSessionDeletionRequest:      message.MsgTypeSessionDeletionResponse,
	message.MsgTypeSessionReportRequest:        message.MsgTypeSessionReportResponse,
}

func isResponse(t uint8) bool {
	if t == message.MsgTypeVersionNotSupportedResponse {
		return true
	}
	for _, r := range responseType {
		if r == t {
			return true
		}
	}
	return false
}

// Send is the raw escape hatch: it sends req with a fresh sequence number
// (overwriting req's), retransmits it on timeout with the same number, and
// returns the response matched by sequence number. The Cause is not checked.
// A Version Not Supported Response is returned as is.
func (c *Client) Send(ctx context.Context, req message.Message) (message.Message, error) {
	want, ok := responseType[req.MessageType()]
	if !ok {
		return nil, fmt.Errorf("smfsim: %s is not a request", req.MessageTypeName())
	}
	select {
	case <-c.closed:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	p := &pending{want: want, ch: make(chan message.Message, 1)}
	c.mu.Lock()
	for {
		c.seq = (c.seq + 1) & 0xffffff
		if c.seq == 0 {
			continue
		}
		if _, busy := c.pending[c.seq]; !busy {
			break
		}
	}
	seq := c.seq
	c.pending[seq] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, seq)
		c.mu.Unlock()
	}()

	req.SetSequenceNumber(seq)
	b := make([]byte, req.MarshalLen())
	if err := req.MarshalTo(b); err != nil {
		return nil, fmt.Errorf("smfsim: marshal %s: %w", req.MessageTypeName(), err)
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	start := time.Now()
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			c.log.Warn("pfcp retransmit", "msg", req.MessageTypeName(), "seq", seq, "attempt", attempt)
		} else {
			c.log.Debug("pfcp send", "msg", req.MessageTypeName(), "seq", seq, "seid", req.SEID(), "len", len(b))
		}
		if _, err := c.conn.WriteToUDPAddrPort(b, c.upf); err != nil {
			return nil, fmt.Errorf("smfsim: send %s: %w", req.MessageTypeName(), err)
		}
		timer.Reset(c.timeout)
		select {
		case r := <-p.ch:
			c.log.Debug("pfcp response", "msg", r.MessageTypeName(), "seq", seq, "rtt", time.Since(start))
			return r, nil
		case <-timer.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClosed
		}
	}
	return nil, fmt.Errorf("%w: %s seq %d, %d attempts, %v each", ErrTimeout,
		req.MessageTypeName(), seq, c.retries+1, c.timeout)
}

func (c *Client) readLoop() {
	defer close(c.readDone)
	buf := make([]byte, 65535)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-c.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("pfcp read", "err", err)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if from.Addr() != c.upf.Addr() {
			c.log.Warn("pfcp packet from unknown peer ignored", "from", from)
			continue
		}
		b := append([]byte(nil), buf[:n]...)
		msg, err := message.Parse(b)
		if err != nil {
			c.log.Warn("pfcp undecodable packet ignored", "from", from, "len", n, "err", err)
			continue
		}
		if isResponse(msg.MessageType()) {
			c.deliver(msg)
			continue
		}
		c.handleRequest(from, msg)
	}
}

func (c *Client) deliver(msg message.Message) {
	c.mu.Lock()
	p := c.pending[msg.Sequence()]
	c.mu.Unlock()
	if p == nil {
		c.log.Debug("pfcp response without pending request", "msg", msg.MessageTypeName(), "seq", msg.Sequence())
		return
	}
	if msg.MessageType() != p.want && msg.MessageType() != message.MsgTypeVersionNotSupportedResponse {
		c.log.Warn("pfcp response of wrong type ignored", "msg", msg.MessageTypeName(), "seq", msg.Sequence())
		return
	}
	// Learn the UP SEID here, in the reader, so that a Session Report Request
	// that follows the establishment response at once is answered with it.
	if r, ok := msg.(*message.SessionEstablishmentResponse); ok && r.UPFSEID != nil {
		if f, err := r.UPFSEID.FSEID(); err == nil {
			c.mu.Lock()
			if s := c.sessions[r.SEID()]; s != nil && s.UPSEID == 0 {
				s.UPSEID = f.SEID
			}
			c.mu.Unlock()
		}
	}
	select {
	case p.ch <- msg:
	default: // duplicate response; the first one won
	}
}

// handleRequest answers requests from the UPF. Retransmitted requests get
// the cached answer and are not acted on twice.
func (c *Client) handleRequest(from netip.AddrPort, msg message.Message) {
	key := answerKey{from: from, seq: msg.Sequence(), typ: msg.MessageType()}
	now := time.Now()
	c.mu.Lock()
	for k, a := range c.answered {
		if now.Sub(a.at) > answeredTTL {
			delete(c.answered, k)
		}
	}
	if a, ok := c.answered[key]; ok {
		c.mu.Unlock()
		c.log.Debug("pfcp retransmitted request answered from cache", "msg", msg.MessageTypeName(), "seq", key.seq)
		_, _ = c.conn.WriteToUDPAddrPort(a.b, from)
		return
	}
	c.mu.Unlock()

	var resp message.Message
	var report *Report
	switch m := msg.(type) {
	case *message.HeartbeatRequest:
		c.notePeerRecovery(m.RecoveryTimeStamp)
		resp = message.NewHeartbeatResponse(m.Sequence(), ie.NewRecoveryTimeStamp(c.recovery))
		c.log.Debug("pfcp heartbeat from UPF answered", "seq", m.Sequence())
	case *message.SessionReportRequest:
		resp, report = c.handleReport(m)
	case *message.NodeReportRequest:
		resp = message.NewNodeReportResponse(m.Sequence(), c.nodeIDIE(), ie.NewCause(ie.CauseRequestAccepted), nil)
		c.log.Info("pfcp node report from UPF", "seq", m.Sequence())
	case *message.AssociationUpdateRequest:
		resp = message.NewAssociationUpdateResponse(m.Sequence(), c.nodeIDIE(), ie.NewCause(ie.CauseRequestAccepted))
		c.log.Info("pfcp association update from UPF", "seq", m.Sequence())
	case *message.AssociationReleaseRequest:
		c.mu.Lock()
		c.associated = false
		c.mu.Unlock()
		resp = message.NewAssociationReleaseResponse(m.Sequence(), c.nodeIDIE(), ie.NewCause(ie.CauseRequestAccepted))
		c.log.Warn("pfcp association released by UPF", "seq", m.Sequence())
	default:
		c.log.Warn("pfcp request not handled by the SMF simulator", "msg", msg.MessageTypeName(), "seq", msg.Sequence())
		return
	}
	b := make([]byte, resp.MarshalLen())
	if err := resp.MarshalTo(b); err != nil {
		c.log.Error("pfcp marshal response", "msg", resp.MessageTypeName(), "err", err)
		return
	}
	c.mu.Lock()
	c.answered[key] = answer{b: b, at: now}
	c.mu.Unlock()
	if _, err := c.conn.WriteToUDPAddrPort(b, from); err != nil {
		c.log.Warn("pfcp send response", "msg", resp.MessageTypeName(), "err", err)
	}
	if report != nil {
		select {
		case c.reports <- *report:
		default:
			c.log.Warn("pfcp report queue full, report dropped", "seid", report.SEID)
		}
	}
}

func (c *Client) handleReport(m *message.SessionReportRequest) (message.Message, *Report) {
	cpSEID := m.SEID()
	c.mu.Lock()
	s := c.sessions[cpSEID]
	c.mu.Unlock()
	if s == nil {
		c.log.Warn("pfcp session report for unknown session", "seid", cpSEID, "seq", m.Sequence())
		return message.NewSessionReportResponse(0, 0, 0, m.Sequence(), 0,
			ie.NewCause(ie.CauseSessionContextNotFound)), nil
	}
	c.mu.Lock()
	upSEID := s.UPSEID
	c.mu.Unlock()
	r := &Report{SEID: cpSEID, UPSEID: upSEID, Received: time.Now()}
	if m.ReportType != nil {
		r.Type, _ = m.ReportType.ReportType()
		r.Types = ReportTypeNames(r.Type)
	}
	usage, err := parseUsageReports(m.UsageReport)
	r.Usage = usage
	if err != nil {
		c.log.Warn("pfcp session report with bad usage report", "seid", cpSEID, "err", err)
		return message.NewSessionReportResponse(0, 0, upSEID, m.Sequence(), 0,
			ie.NewCause(ie.CauseMandatoryIEIncorrect), ie.NewOffendingIE(ie.UsageReportWithinSessionReportRequest)), nil
	}
	c.log.Info("pfcp session report", "seid", cpSEID, "type", r.Types, "usage_reports", len(r.Usage))
	return message.NewSessionReportResponse(0, 0, upSEID, m.Sequence(), 0,
		ie.NewCause(ie.CauseRequestAccepted)), r
}

func (c *Client) notePeerRecovery(ts *ie.IE) {
	if ts == nil {
		return
	}
	t, err := ts.RecoveryTimeStamp()
	if err != nil {
		return
	}
	c.mu.Lock()
	prev := c.peerRecovery
	c.peerRecovery = t
	c.mu.Unlock()
	if !prev.IsZero() && !prev.Equal(t) {
		c.log.Warn("pfcp UPF recovery time stamp changed: UPF restarted", "was", prev, "now", t)
	}
}

// Associate sends an Association Setup Request (Node ID, Recovery Time
// Stamp, CP Function Features) and checks the Cause. It returns the UPF's
// Node ID and UP Function Features octets (nil if absent).
func (c *Client) Associate(ctx context.Context) (upNodeID string, upFeatures []byte, err error) {
	req := message.NewAssociationSetupRequest(0,
		c.nodeIDIE(),
		ie.NewRecoveryTimeStamp(c.recovery),
		ie.NewCPFunctionFeatures(c.cpFeat...),
	)
	r, err := c.Send(ctx, req)
	if err != nil {
		return "", nil, err
	}
	resp, ok := r.(*message.AssociationSetupResponse)
	if !ok {
		return "", nil, unexpected("Association Setup Request", r)
	}
	if err := checkCause("Association Setup Request", resp.Cause, nil, nil); err != nil {
		return "", nil, err
	}
	if resp.NodeID != nil {
		upNodeID, _ = resp.NodeID.NodeID()
	}
	if resp.UPFunctionFeatures != nil {
		upFeatures = append([]byte(nil), resp.UPFunctionFeatures.Payload...)
	}
	c.notePeerRecovery(resp.RecoveryTimeStamp)
	c.mu.Lock()
	c.associated = true
	c.mu.Unlock()
	c.log.Info("pfcp associated", "upf_node_id", upNodeID)
	return upNodeID, upFeatures, nil
}

// Release sends an Association Release Request and checks the Cause.
func (c *Client) Release(ctx context.Context) error {
	r, err := c.Send(ctx, message.NewAssociationReleaseRequest(0, c.nodeIDIE()))
	if err != nil {
		return err
	}
	resp, ok := r.(*message.AssociationReleaseResponse)
	if !ok {
		return unexpected("Association Release Request", r)
	}
	if err := checkCause("Association Release Request", resp.Cause, nil, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.associated = false
	c.mu.Unlock()
	c.log.Info("pfcp association released")
	return nil
}

// Heartbeat sends a Heartbeat Request and returns the round-trip time (of
// the attempt that was answered, retransmissions included) and the UPF's
// Recovery Time Stamp.
func (c *Client) Heartbeat(ctx context.Context) (rtt time.Duration, peerRecovery time.Time, err error) {
	start := time.Now()
	r, err := c.Send(ctx, message.NewHeartbeatRequest(0, ie.NewRecoveryTimeStamp(c.recovery), nil))
	if err != nil {
		return 0, time.Time{}, err
	}
	rtt = time.Since(start)
	resp, ok := r.(*message.HeartbeatResponse)
	if !ok {
		return 0, time.Time{}, unexpected("Heartbeat Request", r)
	}
	if resp.RecoveryTimeStamp == nil {
		return rtt, time.Time{}, errors.New("Heartbeat Response without Recovery Time Stamp")
	}
	peerRecovery, err = resp.RecoveryTimeStamp.RecoveryTimeStamp()
	if err != nil {
		return rtt, time.Time{}, fmt.Errorf("Heartbeat Response: %w", err)
	}
	c.notePeerRecovery(resp.RecoveryTimeStamp)
	return rtt, peerRecovery, nil
}

func unexpected(req string, r message.Message) error {
	if r.MessageType() == message.MsgTypeVersionNotSupportedResponse {
		return fmt.Errorf("%s: UPF answered Version Not Supported", req)
	}
	return fmt.Errorf("%s: unexpected %s", req, r.MessageTypeName())
}
