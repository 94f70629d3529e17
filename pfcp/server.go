package pfcp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Enforcer is what the server needs of the datapath; *enforcer.Enforcer
// implements it.
type Enforcer interface {
	InstallSession(enforcer.Session) error
	// ReplaceSession is InstallSession returning the final usage of the
	// rules the change removed (read after they stopped matching).
	ReplaceSession(enforcer.Session) (removed map[uint32]enforcer.Counter, err error)
	RemoveSession(seid uint64) (enforcer.SessionReport, error)
	SessionUsage(seid uint64) (enforcer.SessionUsage, error)
	RuleUsage(seid uint64, ruleID uint32) (enforcer.Counter, error)
}

var _ Enforcer = (*enforcer.Enforcer)(nil)

// Config configures a Server. See the package documentation for defaults.
type Config struct {
	ListenAddr         string         // default "127.0.0.1:8805"; IPv4 or IPv6 ("[::1]:8805")
	NodeID             string         // IPv4, IPv6 or FQDN; sent as Node ID IE. Default: the listen address
	RecoveryTimeStamp  time.Time      // the daemon keeps it across restarts; zero = now
	AllowedPeers       []netip.Prefix // PFCP accepted only from these source addresses; empty = loopback only
	N3v4, N3v6         netip.Addr     // addresses in UPF-allocated F-TEIDs
	HeartbeatInterval  time.Duration  // UPF-initiated heartbeats; 0 = off
	HeartbeatRetries   int            // unanswered heartbeats before a peer counts as lost; default 3
	PurgeOnPeerRestart bool           // act on heartbeat evidence of a peer restart or loss
	MaxRulesPerSession int            // PINE rule quota per session (enforcer rules), default 1024
	UsagePollInterval  time.Duration  // how often URR thresholds are checked, default 1s
	Logger             *slog.Logger
	Enforcer           Enforcer

	// OnChange, when set, is called with what an accepted request (or a
	// usage poll taking reports, or a heartbeat verdict) changed, after the
	// datapath has it and before the response is sent, under the server's
	// lock: a persisted change is never lost to a crash right after the
	// SMF learnt it was accepted. A Change carries only the sessions it
	// touched. An error is logged and counted (PersistFailures); the change
	// stays in force.
	OnChange func(Change) error
}

// Defaults.
const (
	DefaultListenAddr         = "127.0.0.1:8805"
	DefaultHeartbeatRetries   = 3
	DefaultMaxRulesPerSession = 1024
	DefaultUsagePollInterval  = time.Second

	// The response cache answers retransmitted requests: at most this many
	// responses, each kept this long (well beyond T1 × N1 of common SMFs).
	ResponseCacheSize = 1024
	ResponseCacheAge  = 30 * time.Second
)

// ServerStats counts what the server did, for metrics.
type ServerStats struct {
	Received            map[uint8]uint64         // messages received, by message type (known types only)
	Sent                map[uint8]uint64         // messages sent (responses and our requests), by message type
	Causes              map[uint8]uint64         // Cause values of the responses sent
	Undecodable         uint64                   // dropped: too short, bad header or IEs that do not decode
	UnknownType         uint64                   // dropped: message type unknown
	Unexpected          uint64                   // dropped: a response matching no request of ours, or a response type we never ask for
	RejectedPeers       uint64                   // messages from sources outside AllowedPeers
	Retransmissions     uint64                   // requests answered from the response cache
	VersionNotSupported uint64                   // messages with a PFCP version other than 1
	PeerRestarts        uint64                   // peers found restarted (and their sessions purged)
	PeersLost           uint64                   // peers counted as lost after unanswered heartbeats
	HandlerPanics       uint64                   // messages dropped because a handler panicked (a bug; state unchanged)
	PersistFailures     uint64                   // OnChange calls that failed
	HeartbeatRTT        map[string]time.Duration // last round-trip time of our heartbeats, by peer Node ID
	Associations        int
	Sessions            int
}

func (st ServerStats) clone() ServerStats {
	st.Received, st.Sent, st.Causes = maps.Clone(st.Received), maps.Clone(st.Sent), maps.Clone(st.Causes)
	st.HeartbeatRTT = maps.Clone(st.HeartbeatRTT)
	return st
}

// Server is the N4 (PFCP) endpoint of the UPF.
type Server struct {
	cfg    Config
	log    *slog.Logger
	enf    Enforcer
	rts    time.Time // our Recovery Time Stamp, whole seconds
	nodeID *ie.IE
	n4v4   netip.Addr // addresses of our F-SEIDs
	n4v6   netip.Addr
	now    func() time.Time

	mu        sync.Mutex
	send      func(to netip.AddrPort, b []byte) error // nil: not serving, UPF-initiated messages are not sent
	assocs    map[string]*association                 // by Node ID
	sessions  map[uint64]*session                     // by UP SEID
	teids     map[uint32]uint64                       // local TEID → UP SEID
	seq       uint32                                  // of our requests
	cache     *responseCache
	pending   map[uint32]*pendingRequest // our session report requests, by sequence number
	stats     ServerStats
	rejectLog map[netip.Addr]time.Time
	dirty     changes // what the running handler changed, for OnChange

	connMu sync.Mutex
	conn   *net.UDPConn
	ready  chan struct{}
}

// NewServer checks the configuration and fills in defaults.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Enforcer == nil {
		return nil, errors.New("pfcp: no Enforcer")
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	listen, err := netip.ParseAddrPort(cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("pfcp: listen address %q: %w", cfg.ListenAddr, err)
	}
	if cfg.NodeID == "" {
		if listen.Addr().IsUnspecified() {
			return nil, fmt.Errorf("pfcp: NodeID is needed when listening on %s", listen.Addr())
		}
		cfg.NodeID = listen.Addr().String()
	}
	if cfg.RecoveryTimeStamp.IsZero() {
		cfg.RecoveryTimeStamp = time.Now()
	}
	if cfg.HeartbeatRetries <= 0 {
		cfg.HeartbeatRetries = DefaultHeartbeatRetries
	}
	if cfg.MaxRulesPerSession <= 0 {
		cfg.MaxRulesPerSession = DefaultMaxRulesPerSession
	}
	if cfg.UsagePollInterval <= 0 {
		cfg.UsagePollInterval = DefaultUsagePollInterval
	}
	if cfg.HeartbeatInterval < 0 {
		return nil, errors.New("pfcp: negative HeartbeatInterval")
	}
	if len(cfg.AllowedPeers) == 0 {
		cfg.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if cfg.N3v4.IsValid() && !cfg.N3v4.Is4() || cfg.N3v6.IsValid() && !cfg.N3v6.Is6() {
		return nil, fmt.Errorf("pfcp: N3 addresses %s, %s of the wrong family", cfg.N3v4, cfg.N3v6)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	nodeID := ie.NewNodeIDHeuristic(cfg.NodeID)
	if nodeID == nil {
		return nil, fmt.Errorf("pfcp: NodeID %q", cfg.NodeID)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, enf: cfg.Enforcer, nodeID: nodeID,
		rts:       cfg.RecoveryTimeStamp.Truncate(time.Second),
		now:       time.Now,
		assocs:    map[string]*association{},
		sessions:  map[uint64]*session{},
		teids:     map[uint32]uint64{},
		cache:     newResponseCache(ResponseCacheSize, ResponseCacheAge),
		pending:   map[uint32]*pendingRequest{},
		rejectLog: map[netip.Addr]time.Time{},
		stats: ServerStats{Received: map[uint8]uint64{}, Sent: map[uint8]uint64{}, Causes: map[uint8]uint64{},
			HeartbeatRTT: map[string]time.Duration{}},
		ready: make(chan struct{}),
	}
	// Our F-SEID address: the Node ID if it is an address, else the listen
	// address, else the N3 address.
	for _, a := range []netip.Addr{parseAddr(cfg.NodeID), listen.Addr(), cfg.N3v4, cfg.N3v6} {
		if !a.IsValid() || a.IsUnspecified() {
			continue
		}
		if a.Is4() && !s.n4v4.IsValid() {
			s.n4v4 = a
		}
		if a.Is6() && !s.n4v6.IsValid() {
			s.n4v6 = a
		}
	}
	if !s.n4v4.IsValid() && !s.n4v6.IsValid() {
		return nil, errors.New("pfcp: no address for F-SEIDs: give an IP NodeID or listen address")
	}
	return s, nil
}

func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Listen binds the UDP socket; Addr is valid and Ready closed afterwards.
func (s *Server) Listen() error {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		return nil
	}
	ua, err := net.ResolveUDPAddr("udp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("pfcp: %w", err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("pfcp: listen: %w", err)
	}
	s.conn = conn
	close(s.ready)
	return nil
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on; nil before Listen.
func (s *Server) Addr() net.Addr {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// Serve listens (unless Listen or ServeConn gave it a socket) and serves
// until ctx is done. It closes the socket when it returns.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.connMu.Lock()
	conn := s.conn
	s.connMu.Unlock()
	return s.serve(ctx, conn)
}

// ServeConn serves on a socket the caller opened.
func (s *Server) ServeConn(ctx context.Context, conn *net.UDPConn) error {
	s.connMu.Lock()
	if s.conn != nil {
		s.connMu.Unlock()
		return errors.New("pfcp: already listening")
	}
	s.conn = conn
	close(s.ready)
	s.connMu.Unlock()
	return s.serve(ctx, conn)
}

func (s *Server) serve(ctx context.Context, conn *net.UDPConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.send = func(to netip.AddrPort, b []byte) error {
		_, err := conn.WriteToUDPAddrPort(b, to)
		return err
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.send = nil
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		conn.Close()
	})
	if s.cfg.HeartbeatInterval > 0 {
		wg.Go(func() { s.every(ctx, s.cfg.HeartbeatInterval, s.heartbeatTick) })
	}
	wg.Go(func() { s.every(ctx, s.cfg.UsagePollInterval, s.pollUsage) })
	defer wg.Wait()

	s.log.Info("PFCP server listening", "addr", conn.LocalAddr(), "node_id", s.cfg.NodeID,
		"recovery_time_stamp", s.rts.UTC(), "allowed_peers", s.cfg.AllowedPeers)
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("pfcp: socket closed: %w", err)
			}
			s.log.Warn("PFCP read", "err", err)
			continue
		}
		// go-pfcp keeps references into the buffer: give each message its own.
		pkt := append([]byte(nil), buf[:n]...)
		if resp := s.HandleMessage(from, pkt); resp != nil {
			if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
				s.log.Warn("PFCP write", "peer", from, "err", err)
			}
		}
	}
}

func (s *Server) every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats.clone()
	st.Associations = len(s.assocs)
	st.Sessions = len(s.sessions)
	return st
}

// transmit sends a UPF-initiated message (under s.mu).
func (s *Server) transmit(to netip.AddrPort, b []byte, typ uint8) {
	if s.send == nil {
		return
	}
	s.stats.Sent[typ]++
	if err := s.send(to, b); err != nil {
		s.log.Warn("PFCP send", "peer", to, "type", typ, "err", err)
	}
}

func (s *Server) nextSeq() uint32 {
	s.seq = (s.seq + 1) & 0xffffff
	if s.seq == 0 {
		s.seq = 1
	}
	return s.seq
}

// allocTEID picks a random non-zero TEID owned by no session and not in taken.
func (s *Server) allocTEID(taken map[uint32]bool) (uint32, bool) {
	for range 64 {
		t := rand.Uint32()
		if _, used := s.teids[t]; t != 0 && !used && !taken[t] {
			return t, true
		}
	}
	return 0, false
}

// allocSEID picks a random non-zero UP SEID not in use.
func (s *Server) allocSEID() uint64 {
	for {
		if v := rand.Uint64(); v != 0 && s.sessions[v] == nil {
			return v
		}
	}
}

func (s *Server) allowed(a netip.Addr) bool {
	for _, p := range s.cfg.AllowedPeers {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isRequest reports whether a message type is a request a peer may send us.
func isRequest(t uint8) bool {
	switch t {
	case message.MsgTypeHeartbeatRequest, message.MsgTypePFDManagementRequest,
		message.MsgTypeAssociationSetupRequest, message.MsgTypeAssociationUpdateRequest,
		message.MsgTypeAssociationReleaseRequest, message.MsgTypeNodeReportRequest,
		message.MsgTypeSessionSetDeletionRequest, message.MsgTypeSessionEstablishmentRequest,
		message.MsgTypeSessionModificationRequest, message.MsgTypeSessionDeletionRequest,
		message.MsgTypeSessionReportRequest:
		return true
	}
	return false
}

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

// HandleMessage handles one PFCP message from peer and returns the
// response to send back, or nil. It is the whole protocol logic short of
// the socket: the handler tests and the fuzz target call it directly.
func (s *Server) HandleMessage(peer netip.AddrPort, b []byte) (resp []byte) {
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			// Handlers build new state aside and commit last: a panic
			// leaves the stored state as it was.
			s.log.Error("PFCP message handler panicked; message dropped", "peer", peer, "panic", r)
			s.stats.HandlerPanics++
			resp = nil
		}
		// What the request changed is persisted before its response leaves.
		s.flush()
	}()
	return s.handle(peer, b)
}

func (s *Server) handle(peer netip.AddrPort, b []byte) []byte {
	if len(b) < 8 {
		s.stats.Undecodable++
		return nil
	}
	typ, version := b[1], b[0]>>5
	if !s.allowed(peer.Addr()) {
		return s.rejectPeer(peer, b)
	}
	h, err := message.ParseHeader(b)
	if err != nil {
		s.stats.Undecodable++
		return nil
	}
	if version != 1 {
		s.stats.VersionNotSupported++
		s.log.Debug("PFCP version not supported", "peer", peer, "version", version)
		return s.reply(message.NewVersionNotSupportedResponse(h.SequenceNumber), 0)
	}
	if !isRequest(typ) && !isResponse(typ) {
		s.stats.UnknownType++
		s.log.Debug("unknown PFCP message type dropped", "peer", peer, "type", typ)
		return nil
	}
	if isResponse(typ) {
		s.handleResponse(peer, b)
		return nil
	}
	now := s.now()
	sum := sha256.Sum256(b)
	key := cacheKey{peer: peer, seq: h.SequenceNumber}
	if r, ok := s.cache.get(key, sum, now); ok {
		s.stats.Received[typ]++
		s.stats.Retransmissions++
		s.log.Debug("retransmitted request answered from cache", "peer", peer, "type", typ, "seq", h.SequenceNumber)
		return r
	}
	m, err := message.Parse(b)
	if err != nil {
		s.stats.Undecodable++
		s.log.Debug("undecodable PFCP message dropped", "peer", peer, "type", typ, "err", err)
		return nil
	}
	s.stats.Received[typ]++
	r := s.handleRequest(peer, m)
	if r != nil {
		s.cache.put(key, sum, r, now)
	}
	return r
}

func (s *Server) handleRequest(peer netip.AddrPort, m message.Message) []byte {
	switch m := m.(type) {
	case *message.HeartbeatRequest:
		return s.handleHeartbeatRequest(peer, m)
	case *message.AssociationSetupRequest:
		return s.handleAssociationSetup(peer, m)
	case *message.AssociationUpdateRequest:
		return s.handleAssociationUpdate(peer, m)
	case *message.AssociationReleaseRequest:
		return s.handleAssociationRelease(peer, m)
	case *message.SessionEstablishmentRequest:
		return s.handleEstablishment(peer, m)
	case *message.SessionModificationRequest:
		return s.handleModification(peer, m)
	case *message.SessionDeletionRequest:
		return s.handleDeletion(peer, m)
	case *message.PFDManagementRequest:
		return s.reply(message.NewPFDManagementResponse(m.Sequence(), ie.NewCause(ie.CauseServiceNotSupported), nil), ie.CauseServiceNotSupported)
	case *message.NodeReportRequest:
		return s.reply(message.NewNodeReportResponse(m.Sequence(), s.nodeID, ie.NewCause(ie.CauseServiceNotSupported), nil), ie.CauseServiceNotSupported)
	case *message.SessionSetDeletionRequest:
		return s.reply(message.NewSessionSetDeletionResponse(m.Sequence(), s.nodeID, ie.NewCause(ie.CauseServiceNotSupported), nil), ie.CauseServiceNotSupported)
	case *message.SessionReportRequest:
		// Sent by a UPF, never to one.
		return s.reply(message.NewSessionReportResponse(0, 0, 0, m.Sequence(), 0, ie.NewCause(ie.CauseServiceNotSupported)), ie.CauseServiceNotSupported)
	}
	return nil
}

func (s *Server) handleResponse(peer netip.AddrPort, b []byte) {
	typ := b[1]
	switch typ {
	case message.MsgTypeHeartbeatResponse, message.MsgTypeSessionReportResponse:
	default:
		s.stats.Received[typ]++
		s.stats.Unexpected++
		return
	}
	m, err := message.Parse(b)
	if err != nil {
		s.stats.Undecodable++
		return
	}
	s.stats.Received[typ]++
	switch m := m.(type) {
	case *message.HeartbeatResponse:
		s.handleHeartbeatResponse(peer, m)
	case *message.SessionReportResponse:
		s.handleSessionReportResponse(peer, m)
	}
}

// reply marshals a response and counts it with its Cause (0: none).
func (s *Server) reply(m message.Message, cause uint8) []byte {
	b := make([]byte, m.MarshalLen())
	if err := m.MarshalTo(b); err != nil {
		s.log.Error("marshal PFCP response", "type", m.MessageTypeName(), "err", err)
		return nil
	}
	s.stats.Sent[m.MessageType()]++
	if cause != 0 {
		s.stats.Causes[cause]++
	}
	return b
}

// rejectPeer handles a message from a source outside AllowedPeers: an
// Association Setup Request gets "Request rejected", the rest is dropped.
func (s *Server) rejectPeer(peer netip.AddrPort, b []byte) []byte {
	s.stats.RejectedPeers++
	now := s.now()
	if last, ok := s.rejectLog[peer.Addr()]; !ok || now.Sub(last) > time.Minute {
		if len(s.rejectLog) > 1024 {
			clear(s.rejectLog)
		}
		s.rejectLog[peer.Addr()] = now
		s.log.Warn("PFCP from a peer not allowed (logged once a minute per address)", "peer", peer, "type", b[1])
	}
	if b[0]>>5 != 1 || b[1] != message.MsgTypeAssociationSetupRequest {
		return nil
	}
	m, err := message.ParseAssociationSetupRequest(b)
	if err != nil {
		return nil
	}
	return s.reply(message.NewAssociationSetupResponse(m.Sequence(), s.nodeID,
		ie.NewCause(ie.CauseRequestRejected), ie.NewRecoveryTimeStamp(s.rts)), ie.CauseRequestRejected)
}

// ---- response cache ----

type cacheKey struct {
	peer netip.AddrPort
	seq  uint32
}

type cacheEntry struct {
	key  cacheKey
	sum  [32]byte
	resp []byte
	at   time.Time
}

// responseCache keeps the responses to recent requests, bounded in count
// and age, oldest evicted first.
type responseCache struct {
	max     int
	age     time.Duration
	entries map[cacheKey]*cacheEntry
	order   []*cacheEntry // insertion order
}

func newResponseCache(max int, age time.Duration) *responseCache {
	return &responseCache{max: max, age: age, entries: map[cacheKey]*cacheEntry{}}
}

func (c *responseCache) expire(now time.Time) {
	n := 0
	for n < len(c.order) && (len(c.order)-n > c.max || now.Sub(c.order[n].at) > c.age) {
		e := c.order[n]
		if c.entries[e.key] == e {
			delete(c.entries, e.key)
		}
		c.order[n] = nil
		n++
	}
	c.order = c.order[n:]
	if cap(c.order) > 4*c.max && len(c.order) < c.max {
		c.order = append([]*cacheEntry(nil), c.order...)
	}
}

// get returns the response to an identical earlier request.
func (c *responseCache) get(k cacheKey, sum [32]byte, now time.Time) ([]byte, bool) {
	c.expire(now)
	e, ok := c.entries[k]
	if !ok || e.sum != sum {
		return nil, false
	}
	return e.resp, true
}

func (c *responseCache) put(k cacheKey, sum [32]byte, resp []byte, now time.Time) {
	e := &cacheEntry{key: k, sum: sum, resp: resp, at: now}
	c.entries[k] = e
	c.order = append(c.order, e)
	c.expire(now)
}

func (c *responseCache) len() int { return len(c.entries) }
