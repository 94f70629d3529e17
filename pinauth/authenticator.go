package pinauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/wispr"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth/eap"
)

// Defaults of Config.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultRetries     = 2
	DefaultMaxRounds   = 10
	DefaultPeerTimeout = 10 * time.Second
	DefaultEventWindow = 300 * time.Second
)

// Errors of Admit. Each is wrapped with the details.
var (
	// ErrRejected: the DN-AAA answered Access-Reject.
	ErrRejected = errors.New("pinauth: DN-AAA rejected the PINE")
	// ErrAAAUnreachable: no authentic answer after all retries.
	ErrAAAUnreachable = errors.New("pinauth: no authentic answer from the DN-AAA")
	// ErrMalformed: the exchange broke the protocol (EAP or RADIUS).
	ErrMalformed = errors.New("pinauth: malformed exchange")
	// ErrIdentityMismatch: the PINE's EAP identity is not the one its PEGC
	// asked admission for.
	ErrIdentityMismatch = errors.New("pinauth: EAP identity differs from the admission request")
	// ErrBadRequest: the admission request itself is invalid or not allowed.
	ErrBadRequest = errors.New("pinauth: bad admission request")
	// ErrInstall: the DN-AAA accepted, but pine-upf refused the rules.
	ErrInstall = errors.New("pinauth: installing the PINE's rules failed")
)

// AAAServer is a DN-AAA: its RADIUS authentication address and shared secret.
type AAAServer struct {
	Addr   string // "host:port"
	Secret []byte
}

// DAClient is a dynamic-authorization client (RFC 5176 "Dynamic
// Authorization Server" in its terms, the DN-AAA or an operator tool)
// allowed to send Disconnect-Requests, by source address.
type DAClient struct {
	Addr   netip.Addr
	Secret []byte
}

// Config configures an Authenticator.
type Config struct {
	// AAA are the DN-AAA servers the SMF may use; the first is the default.
	// An admission request naming a server not in this list is refused (a
	// PEGC must not point the SMF at a server of its choosing).
	AAA []AAAServer
	// NASIdentifier is sent in Access-Requests and, when a Disconnect-
	// Request carries one, must match (default "pine-smf").
	NASIdentifier string
	// Timeout per RADIUS attempt and Retries after the first (defaults 2s, 2;
	// negative Retries: none).
	Timeout time.Duration
	Retries int
	// MaxRounds bounds the Access-Challenge rounds of one authentication.
	MaxRounds int
	// PeerTimeout bounds the wait for the PINE's answer to one EAP request.
	PeerTimeout time.Duration
	// DefaultMBRUL/DL (bit/s) are used when the Access-Accept carries no
	// WISPr-Bandwidth-Max-Up/Down; 0 is no limit.
	DefaultMBRUL, DefaultMBRDL uint64
	// DAClients may send Disconnect-Requests. Default: the AAA servers'
	// addresses with their secrets.
	DAClients []DAClient
	// EventWindow is how far an Event-Timestamp may be from now, and how
	// long seen Disconnect-Requests are remembered (default 300s).
	EventWindow time.Duration
	// AllowMissingEventTimestamp accepts Disconnect-Requests without
	// Event-Timestamp (replays are then caught only by the seen-request
	// memory and the single-use session IDs).
	AllowMissingEventTimestamp bool
	Logger                     *slog.Logger
}

// UPF is the PFCP session of a PEGC in pine-upf: *smfsim.Session.
type UPF interface {
	AddPINE(ctx context.Context, p smfsim.PINE) error
	RemovePINE(ctx context.Context, id uint16) ([]smfsim.UsageReport, error)
}

// Relay carries EAP between the authenticator and one PINE (through its
// PEGC) for one admission.
type Relay interface {
	// Exchange sends an EAP Request to the PINE and returns its Response.
	Exchange(ctx context.Context, req []byte) ([]byte, error)
	// Deliver sends the final EAP-Success or EAP-Failure.
	Deliver(ctx context.Context, result []byte) error
}

// AdmitRequest is a PEGC's request to admit a PINE (solution #5 step 5).
type AdmitRequest struct {
	PINEID      uint16
	EAPIdentity string
	Addr        netip.Addr
	Proto       uint8
	Ports       []smfsim.PortRange
	// AAA is the DN-AAA address the PINE asked for; "" for the default.
	AAA string
}

// Grant is an admitted PINE.
type Grant struct {
	SessionID   string // Acct-Session-Id, single use
	PINEID      uint16
	EAPIdentity string
	AAA         string
	PINE        smfsim.PINE // the rules installed
	// AcceptedAt: the authentic Access-Accept (with EAP-Success) arrived.
	// InstalledAt: pine-upf accepted the Session Modification.
	// SuccessAt: EAP-Success was handed to the relay.
	AcceptedAt, InstalledAt, SuccessAt time.Time
	Rounds                             int
	upf                                UPF
}

// Authenticator is the SMF's PINE authenticator. Safe for concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Grant // by session ID
	byPINE   map[pineKey]*Grant
	pending  map[pineKey]bool // admissions in progress

	das *daServer
}

type pineKey struct {
	upf UPF
	id  uint16
}

// New checks cfg and returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if len(cfg.AAA) == 0 {
		return nil, errors.New("pinauth: no DN-AAA server configured")
	}
	for _, s := range cfg.AAA {
		if len(s.Secret) == 0 {
			return nil, fmt.Errorf("pinauth: DN-AAA %s: empty shared secret", s.Addr)
		}
		if _, _, err := net.SplitHostPort(s.Addr); err != nil {
			return nil, fmt.Errorf("pinauth: DN-AAA address %q: %w", s.Addr, err)
		}
	}
	if cfg.NASIdentifier == "" {
		cfg.NASIdentifier = "pine-smf"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.MaxRounds <= 0 {
		cfg.MaxRounds = DefaultMaxRounds
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = DefaultPeerTimeout
	}
	if cfg.EventWindow <= 0 {
		cfg.EventWindow = DefaultEventWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DAClients == nil {
		for _, s := range cfg.AAA {
			host, _, _ := net.SplitHostPort(s.Addr)
			ips, err := net.LookupIP(host)
			if err != nil {
				return nil, fmt.Errorf("pinauth: DN-AAA %s: %w", s.Addr, err)
			}
			for _, ip := range ips {
				a, _ := netip.AddrFromSlice(ip)
				cfg.DAClients = append(cfg.DAClients, DAClient{Addr: a.Unmap(), Secret: s.Secret})
			}
		}
	}
	return &Authenticator{
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: map[string]*Grant{},
		byPINE:   map[pineKey]*Grant{},
		pending:  map[pineKey]bool{},
	}, nil
}

func (a *Authenticator) server(addr string) (AAAServer, error) {
	if addr == "" {
		return a.cfg.AAA[0], nil
	}
	for _, s := range a.cfg.AAA {
		if s.Addr == addr {
			return s, nil
		}
	}
	return AAAServer{}, fmt.Errorf("%w: DN-AAA %q is not a configured server", ErrBadRequest, addr)
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randByte() uint8 {
	var b [1]byte
	_, _ = rand.Read(b[:])
	return b[0]
}

func (r *AdmitRequest) validate() error {
	switch {
	case r.PINEID == 0 || r.PINEID > smfsim.MaxPINEID:
		return fmt.Errorf("%w: PINE ID %d outside 1..%d", ErrBadRequest, r.PINEID, smfsim.MaxPINEID)
	case r.EAPIdentity == "" || len(r.EAPIdentity) > 253:
		return fmt.Errorf("%w: EAP identity of %d bytes", ErrBadRequest, len(r.EAPIdentity))
	case !r.Addr.IsValid():
		return fmt.Errorf("%w: PINE address missing", ErrBadRequest)
	}
	for _, p := range r.Ports {
		if p.Hi < p.Lo {
			return fmt.Errorf("%w: port range %v reversed", ErrBadRequest, p)
		}
	}
	return nil
}

// Admit authenticates a PINE through relay and, on success, installs its
// rules in upf (the PEGC's PFCP session). On any failure nothing is
// installed and the PINE has been sent EAP-Failure (when the relay still
// works).
func (a *Authenticator) Admit(ctx context.Context, upf UPF, req AdmitRequest, relay Relay) (*Grant, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	srv, err := a.server(req.AAA)
	if err != nil {
		return nil, err
	}
	key := pineKey{upf, req.PINEID}
	a.mu.Lock()
	if a.byPINE[key] != nil || a.pending[key] {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: PINE %d is already admitted or being admitted in this PEGC session", ErrBadRequest, req.PINEID)
	}
	a.pending[key] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.pending, key)
		a.mu.Unlock()
	}()

	g := &Grant{SessionID: newSessionID(), PINEID: req.PINEID, EAPIdentity: req.EAPIdentity, AAA: srv.Addr, upf: upf}
	log := a.log.With("pine", req.PINEID, "identity", req.EAPIdentity, "session", g.SessionID)
	fail := func(lastID uint8, err error) (*Grant, error) {
		f := eap.Packet{Code: eap.CodeFailure, ID: lastID}.Marshal()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PeerTimeout)
		defer cancel()
		if derr := relay.Deliver(dctx, f); derr != nil {
			log.Warn("EAP-Failure not delivered", "err", derr)
		}
		log.Info("PINE not admitted", "err", err)
		return nil, err
	}

	// EAP-Request/Identity (TS 33.501 §11.1.2 step 11's EAP start).
	id := randByte()
	resp, err := a.peerExchange(ctx, relay, eap.IdentityRequest(id).Marshal(), id)
	if err != nil {
		return fail(id, err)
	}
	if resp.Type != eap.TypeIdentity {
		return fail(id, fmt.Errorf("%w: PINE answered the Identity request with %v", ErrMalformed, resp))
	}
	if string(resp.Data) != req.EAPIdentity {
		return fail(id, fmt.Errorf("%w: PEGC claimed %q, PINE said %q", ErrIdentityMismatch, req.EAPIdentity, resp.Data))
	}
	eapOut := resp.Marshal()
	var state []byte
	for round := 1; ; round++ {
		if round > a.cfg.MaxRounds {
			return fail(id, fmt.Errorf("%w: no decision after %d rounds", ErrMalformed, a.cfg.MaxRounds))
		}
		g.Rounds = round
		rq := a.accessRequest(srv, g, req, eapOut, state)
		ans, err := a.exchange(ctx, srv, rq)
		if err != nil {
			return fail(id, err)
		}
		msg := eapMessage(ans)
		switch ans.Code {
		case radius.CodeAccessChallenge:
			p, err := eap.Parse(msg)
			if err != nil || p.Code != eap.CodeRequest {
				return fail(id, fmt.Errorf("%w: Access-Challenge without an EAP Request (%v)", ErrMalformed, err))
			}
			state = rfc2865.State_Get(ans)
			id = p.ID
			log.Debug("EAP challenge", "round", round, "eap", p)
			r, err := a.peerExchange(ctx, relay, msg, id)
			if err != nil {
				return fail(id, err)
			}
			eapOut = r.Marshal()
		case radius.CodeAccessReject:
			reason := rfc2865.ReplyMessage_GetString(ans)
			return fail(id, fmt.Errorf("%w: %s after %d rounds%s", ErrRejected, req.EAPIdentity, round, optional(" (", reason, ")")))
		case radius.CodeAccessAccept:
			g.AcceptedAt = time.Now()
			p, err := eap.Parse(msg)
			if err != nil || p.Code != eap.CodeSuccess {
				return fail(id, fmt.Errorf("%w: Access-Accept without EAP-Success (%v)", ErrMalformed, err))
			}
			return a.install(ctx, log, upf, relay, req, g, ans, msg, fail)
		default:
			return fail(id, fmt.Errorf("%w: DN-AAA answered %v", ErrMalformed, ans.Code))
		}
	}
}

func optional(pre, s, post string) string {
	if s == "" {
		return ""
	}
	return pre + s + post
}

func (a *Authenticator) install(ctx context.Context, log *slog.Logger, upf UPF, relay Relay, req AdmitRequest, g *Grant,
	accept *radius.Packet, success []byte, fail func(uint8, error) (*Grant, error)) (*Grant, error) {
	p := smfsim.PINE{ID: req.PINEID, Addr: req.Addr, Proto: req.Proto, Ports: req.Ports,
		MBRUL: a.cfg.DefaultMBRUL, MBRDL: a.cfg.DefaultMBRDL}
	if v, err := wispr.WISPrBandwidthMaxUp_Lookup(accept); err == nil {
		p.MBRUL = uint64(v)
	}
	if v, err := wispr.WISPrBandwidthMaxDown_Lookup(accept); err == nil {
		p.MBRDL = uint64(v)
	}
	g.PINE = p
	if err := upf.AddPINE(ctx, p); err != nil {
		return fail(success[1], fmt.Errorf("%w: %w", ErrInstall, err))
	}
	g.InstalledAt = time.Now()
	a.mu.Lock()
	a.sessions[g.SessionID] = g
	a.byPINE[pineKey{upf, g.PINEID}] = g
	a.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.PeerTimeout)
	defer cancel()
	err := relay.Deliver(dctx, success)
	g.SuccessAt = time.Now()
	if err != nil {
		log.Warn("EAP-Success not delivered (the PINE is admitted anyway)", "err", err)
	}
	log.Info("PINE admitted", "rounds", g.Rounds, "mbr_ul", p.MBRUL, "mbr_dl", p.MBRDL,
		"accept_to_installed", g.InstalledAt.Sub(g.AcceptedAt))
	return g, nil
}

// peerExchange relays one EAP Request to the PINE and checks its Response.
func (a *Authenticator) peerExchange(ctx context.Context, relay Relay, req []byte, id uint8) (eap.Packet, error) {
	pctx, cancel := context.WithTimeout(ctx, a.cfg.PeerTimeout)
	defer cancel()
	b, err := relay.Exchange(pctx, req)
	if err != nil {
		return eap.Packet{}, fmt.Errorf("pinauth: relaying EAP to the PINE: %w", err)
	}
	p, err := eap.Parse(b)
	if err != nil {
		return eap.Packet{}, fmt.Errorf("%w: from the PINE: %w", ErrMalformed, err)
	}
	if p.Code != eap.CodeResponse || p.ID != id {
		return eap.Packet{}, fmt.Errorf("%w: PINE sent %v to request id %d", ErrMalformed, p, id)
	}
	return p, nil
}

// accessRequest builds one round's Access-Request.
func (a *Authenticator) accessRequest(srv AAAServer, g *Grant, req AdmitRequest, eapMsg, state []byte) *radius.Packet {
	p := radius.New(radius.CodeAccessRequest, srv.Secret)
	_ = rfc2865.UserName_SetString(p, req.EAPIdentity)
	_ = rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser)
	_ = rfc2865.NASIdentifier_SetString(p, a.cfg.NASIdentifier)
	_ = rfc2866.AcctSessionID_SetString(p, g.SessionID)
	_ = rfc2865.CallingStationID_SetString(p, fmt.Sprintf("pine-%d@%s", req.PINEID, req.Addr))
	if req.Addr.Is4() {
		_ = rfc2865.FramedIPAddress_Set(p, req.Addr.AsSlice())
	}
	for len(eapMsg) > 0 { // RFC 3579 §3.1: split into 253-octet attributes
		n := min(len(eapMsg), 253)
		p.Add(rfc2869.EAPMessage_Type, radius.Attribute(eapMsg[:n]))
		eapMsg = eapMsg[n:]
	}
	if state != nil {
		_ = rfc2865.State_Set(p, state)
	}
	return p
}

// eapMessage concatenates the EAP-Message attributes of p.
func eapMessage(p *radius.Packet) []byte {
	var out []byte
	for _, avp := range p.Attributes {
		if avp.Type == rfc2869.EAPMessage_Type {
			out = append(out, avp.Attribute...)
		}
	}
	return out
}

// exchange sends an Access-Request to srv and returns the first authentic
// answer. The same bytes are retransmitted after each Timeout, Retries
// times; answers that fail verification are discarded (and counted in the
// error if nothing authentic follows).
func (a *Authenticator) exchange(ctx context.Context, srv AAAServer, p *radius.Packet) (*radius.Packet, error) {
	wire, err := encodeAccessRequest(p)
	if err != nil {
		return nil, fmt.Errorf("%w: encode Access-Request: %w", ErrMalformed, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", srv.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAAAUnreachable, srv.Addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var discarded []string
	refused := false
	buf := make([]byte, radius.MaxPacketLength)
	attempts := a.cfg.Retries + 1
	for attempt := 1; attempt <= attempts; attempt++ {
		if _, err := conn.Write(wire); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: %s: %w", ErrAAAUnreachable, srv.Addr, err)
		}
		deadline := time.Now().Add(a.cfg.Timeout)
		conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					// ICMP port unreachable: nobody listens. Wait out the
					// attempt anyway (the server may be restarting).
					refused = true
					time.Sleep(time.Until(deadline))
				}
				break // timeout: retransmit
			}
			b := buf[:n]
			if err := verifyResponse(b, wire, srv.Secret); err != nil {
				discarded = append(discarded, err.Error())
				a.log.Warn("RADIUS answer discarded", "aaa", srv.Addr, "err", err)
				continue
			}
			ans, err := radius.Parse(b, srv.Secret)
			if err != nil {
				discarded = append(discarded, err.Error())
				continue
			}
			return ans, nil
		}
		if attempt < attempts {
			a.log.Warn("RADIUS retransmit", "aaa", srv.Addr, "attempt", attempt+1)
		}
	}
	detail := ""
	if refused {
		detail = ", port unreachable"
	}
	if len(discarded) > 0 {
		detail += fmt.Sprintf(", %d answers discarded: %v", len(discarded), discarded)
	}
	return nil, fmt.Errorf("%w: %s: %d attempts, %v apart%s", ErrAAAUnreachable, srv.Addr, attempts, a.cfg.Timeout, detail)
}

// Grants returns the admitted PINEs.
func (a *Authenticator) Grants() []*Grant {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Grant, 0, len(a.sessions))
	for _, g := range a.sessions {
		out = append(out, g)
	}
	return out
}

// Lookup returns the grant of a session ID.
func (a *Authenticator) Lookup(sessionID string) *Grant {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[sessionID]
}

// Revoke removes an admitted PINE's rules from pine-upf and forgets its
// session. The session is forgotten even if the removal fails, so that a
// repeated revocation cannot act twice; the error says the rules may remain.
func (a *Authenticator) Revoke(ctx context.Context, sessionID string) error {
	a.mu.Lock()
	g := a.sessions[sessionID]
	if g != nil {
		delete(a.sessions, sessionID)
		delete(a.byPINE, pineKey{g.upf, g.PINEID})
	}
	a.mu.Unlock()
	if g == nil {
		return fmt.Errorf("pinauth: no session %q", sessionID)
	}
	if _, err := g.upf.RemovePINE(ctx, g.PINEID); err != nil {
		a.log.Error("PINE revoked but its rules could not be removed", "pine", g.PINEID, "session", sessionID, "err", err)
		return fmt.Errorf("pinauth: revoke PINE %d: %w", g.PINEID, err)
	}
	a.log.Info("PINE revoked", "pine", g.PINEID, "identity", g.EAPIdentity, "session", sessionID)
	return nil
}

// Forget drops the grants of a PEGC session (its PFCP session is gone).
func (a *Authenticator) Forget(upf UPF) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, g := range a.sessions {
		if g.upf == upf {
			delete(a.sessions, id)
			delete(a.byPINE, pineKey{upf, g.PINEID})
		}
	}
}
