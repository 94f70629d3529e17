package pinauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"
)

// Error-Cause values (RFC 5176 §3.5).
const (
	CauseMissingAttribute          = 402
	CauseNASIdentificationMismatch = 403
	CauseInvalidRequest            = 404
	CauseUnsupportedService        = 405
	CauseSessionContextNotFound    = 503
	CauseSessionContextNotRemovabl = 504
)

// DisconnectStats counts what the Disconnect listener did.
type DisconnectStats struct {
	ACK, NAK, Retransmissions int
	// Discarded: unknown client, bad authenticators, stale timestamp,
	// malformed — silently dropped (RFC 5176 §3.3, §3.4).
	Discarded int
	// LastDiscard is the reason of the last discard.
	LastDiscard string
}

type daServer struct {
	conn *net.UDPConn
	done chan struct{}

	mu    sync.Mutex
	seen  map[seenKey]seenEntry
	stats DisconnectStats
}

type seenKey struct {
	from netip.Addr
	auth [16]byte
}

type seenEntry struct {
	resp []byte
	at   time.Time
}

// ListenDisconnect starts the RFC 5176 Disconnect-Request listener on addr
// (e.g. "127.0.0.1:3799"; port 0 picks one) and returns its address.
func (a *Authenticator) ListenDisconnect(addr string) (netip.AddrPort, error) {
	if a.das != nil {
		return netip.AddrPort{}, errors.New("pinauth: Disconnect listener already running")
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("pinauth: Disconnect listener: %w", err)
	}
	a.das = &daServer{conn: conn, done: make(chan struct{}), seen: map[seenKey]seenEntry{}}
	go a.serveDisconnect()
	ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	a.log.Info("listening for Disconnect-Requests", "addr", ap)
	return ap, nil
}

// DisconnectStats returns the listener's counters.
func (a *Authenticator) DisconnectStats() DisconnectStats {
	if a.das == nil {
		return DisconnectStats{}
	}
	a.das.mu.Lock()
	defer a.das.mu.Unlock()
	return a.das.stats
}

// Close stops the Disconnect listener.
func (a *Authenticator) Close() error {
	if a.das == nil {
		return nil
	}
	err := a.das.conn.Close()
	<-a.das.done
	return err
}

func (a *Authenticator) daSecret(from netip.Addr) []byte {
	for _, c := range a.cfg.DAClients {
		if c.Addr == from {
			return c.Secret
		}
	}
	return nil
}

func (a *Authenticator) serveDisconnect() {
	s := a.das
	defer close(s.done)
	buf := make([]byte, radius.MaxPacketLength)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		b := append([]byte(nil), buf[:n]...)
		resp, why := a.handleDisconnect(from.Addr(), b)
		if resp == nil {
			s.mu.Lock()
			s.stats.Discarded++
			s.stats.LastDiscard = why
			s.mu.Unlock()
			a.log.Warn("Disconnect-Request discarded", "from", from, "reason", why)
			continue
		}
		if _, err := s.conn.WriteToUDPAddrPort(resp, from); err != nil {
			a.log.Warn("Disconnect answer not sent", "to", from, "err", err)
		}
	}
}

// handleDisconnect validates and acts on one request; nil means discard.
func (a *Authenticator) handleDisconnect(from netip.Addr, b []byte) (resp []byte, discard string) {
	s := a.das
	secret := a.daSecret(from)
	if secret == nil {
		return nil, "unknown client " + from.String()
	}
	if len(b) < 20 {
		return nil, "short packet"
	}
	code := radius.Code(b[0])
	if code != radius.CodeDisconnectRequest && code != radius.CodeCoARequest {
		return nil, fmt.Sprintf("unexpected %v", code)
	}
	if err := VerifyDisconnectRequest(b, secret); err != nil {
		return nil, err.Error()
	}
	req, err := radius.Parse(b, secret)
	if err != nil {
		return nil, err.Error()
	}
	key := seenKey{from: from}
	copy(key.auth[:], b[4:20])
	now := time.Now()
	s.mu.Lock()
	for k, e := range s.seen {
		if now.Sub(e.at) > a.cfg.EventWindow {
			delete(s.seen, k)
		}
	}
	if e, ok := s.seen[key]; ok {
		// The same request again: a retransmission or a replay. Either way
		// it gets the first answer and is not acted on twice.
		s.stats.Retransmissions++
		s.mu.Unlock()
		return e.resp, ""
	}
	s.mu.Unlock()
	if ts, err := rfc2869.EventTimestamp_Lookup(req); err == nil {
		if d := now.Sub(ts); d > a.cfg.EventWindow || d < -a.cfg.EventWindow {
			return nil, fmt.Sprintf("Event-Timestamp %v outside the %v window", ts.UTC(), a.cfg.EventWindow)
		}
	}

	nak := radius.CodeDisconnectNAK
	ack := radius.CodeDisconnectACK
	if code == radius.CodeCoARequest {
		nak, ack = radius.CodeCoANAK, radius.CodeCoAACK
	}
	answer := func(c radius.Code, cause int) []byte {
		r := radius.New(c, secret)
		r.Identifier = req.Identifier
		if cause != 0 {
			_ = rfc3576.ErrorCause_Add(r, rfc3576.ErrorCause(cause))
		}
		out, err := EncodeResponse(r, req.Authenticator)
		if err != nil {
			return nil
		}
		s.mu.Lock()
		s.seen[key] = seenEntry{resp: out, at: now}
		if c == ack {
			s.stats.ACK++
		} else {
			s.stats.NAK++
		}
		s.mu.Unlock()
		a.log.Info("Disconnect answered", "from", from, "answer", c, "error_cause", cause)
		return out
	}
	if _, err := rfc2869.EventTimestamp_Lookup(req); err != nil && !a.cfg.AllowMissingEventTimestamp {
		return answer(nak, CauseMissingAttribute), ""
	}
	if code == radius.CodeCoARequest {
		return answer(nak, CauseUnsupportedService), ""
	}
	if nas, err := rfc2865.NASIdentifier_LookupString(req); err == nil && nas != a.cfg.NASIdentifier {
		return answer(nak, CauseNASIdentificationMismatch), ""
	}
	sid, errSID := rfc2866.AcctSessionID_LookupString(req)
	user, errUser := rfc2865.UserName_LookupString(req)
	if errSID != nil && errUser != nil {
		return answer(nak, CauseMissingAttribute), ""
	}
	a.mu.Lock()
	var targets []string
	for id, g := range a.sessions {
		if (errSID == nil && id != sid) || (errUser == nil && g.EAPIdentity != user) {
			continue
		}
		targets = append(targets, id)
	}
	a.mu.Unlock()
	if len(targets) == 0 {
		return answer(nak, CauseSessionContextNotFound), ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed := false
	for _, id := range targets {
		if err := a.Revoke(ctx, id); err != nil {
			failed = true
		}
	}
	if failed {
		return answer(nak, CauseSessionContextNotRemovabl), ""
	}
	return answer(ack, 0), ""
}

// DisconnectOptions name the session(s) a Disconnect-Request ends.
type DisconnectOptions struct {
	SessionID     string // Acct-Session-Id
	UserName      string // the PINE's EAP identity
	NASIdentifier string
	// Timestamp is the Event-Timestamp (default now); NoTimestamp leaves
	// it out.
	Timestamp   time.Time
	NoTimestamp bool
}

// NewDisconnectRequest builds a Disconnect-Request (encode it with
// EncodeDisconnectRequest).
func NewDisconnectRequest(secret []byte, o DisconnectOptions) *radius.Packet {
	p := radius.New(radius.CodeDisconnectRequest, secret)
	if o.SessionID != "" {
		_ = rfc2866.AcctSessionID_SetString(p, o.SessionID)
	}
	if o.UserName != "" {
		_ = rfc2865.UserName_SetString(p, o.UserName)
	}
	if o.NASIdentifier != "" {
		_ = rfc2865.NASIdentifier_SetString(p, o.NASIdentifier)
	}
	if !o.NoTimestamp {
		ts := o.Timestamp
		if ts.IsZero() {
			ts = time.Now()
		}
		_ = rfc2869.EventTimestamp_Set(p, ts)
	}
	return p
}

// DisconnectResult is the answer to a Disconnect-Request.
type DisconnectResult struct {
	Code       radius.Code // Disconnect-ACK or -NAK
	ErrorCause int         // 0 if none
}

// SendDisconnect sends an encoded Disconnect-Request to addr and returns the
// verified answer (Response Authenticator and Message-Authenticator),
// retransmitting every timeout, retries times.
func SendDisconnect(ctx context.Context, addr string, wire, secret []byte, timeout time.Duration, retries int) (DisconnectResult, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return DisconnectResult{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, radius.MaxPacketLength)
	for attempt := 0; attempt <= retries; attempt++ {
		if _, err := conn.Write(wire); err != nil {
			return DisconnectResult{}, err
		}
		conn.SetReadDeadline(time.Now().Add(timeout))
		for {
			n, err := conn.Read(buf)
			if ctx.Err() != nil {
				return DisconnectResult{}, ctx.Err()
			}
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return DisconnectResult{}, err
				}
				break
			}
			if err := verifyResponse(buf[:n], wire, secret); err != nil {
				continue
			}
			p, err := radius.Parse(buf[:n], secret)
			if err != nil {
				continue
			}
			r := DisconnectResult{Code: p.Code}
			if c, err := rfc3576.ErrorCause_Lookup(p); err == nil {
				r.ErrorCause = int(c)
			}
			return r, nil
		}
	}
	return DisconnectResult{}, fmt.Errorf("pinauth: no authentic answer from %s after %d attempts", addr, retries+1)
}
