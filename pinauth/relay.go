package pinauth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth/eap"
)

// PeerRelay is the in-process relay: the PEGC hands EAP straight to the
// PINE's peer.
type PeerRelay struct {
	Peer *eap.Peer
	mu   sync.Mutex
}

// Exchange implements Relay.
func (r *PeerRelay) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Peer.Handle(req)
}

// Deliver implements Relay.
func (r *PeerRelay) Deliver(ctx context.Context, result []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.Peer.Handle(result)
	return err
}

// WireMessage is one line of the PEGC relay protocol (see the package
// documentation).
type WireMessage struct {
	Type string `json:"type"` // "admit", "eap", "result"

	// admit
	PEGC        string   `json:"pegc,omitempty"` // the PEGC's UE address: names its PDU session
	PINEID      uint16   `json:"pine_id,omitempty"`
	EAPIdentity string   `json:"eap_identity,omitempty"`
	Addr        string   `json:"addr,omitempty"`
	Proto       uint8    `json:"proto,omitempty"`
	Ports       []string `json:"ports,omitempty"`
	AAA         string   `json:"aaa,omitempty"`

	// eap, result
	EAP []byte `json:"eap,omitempty"`

	// result
	OK        bool   `json:"ok,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

const maxWireLine = 16 << 10

// RelayServer is the SMF end of the PEGC relay protocol.
type RelayServer struct {
	Auth *Authenticator
	// Session finds the PFCP session of the PEGC named in an admit message.
	Session func(pegc netip.Addr) (UPF, bool)
	// OnResult, if set, is called after every admission.
	OnResult func(req AdmitRequest, g *Grant, err error)
	Logger   *slog.Logger
}

// Serve accepts PEGC connections until ln is closed.
func (s *RelayServer) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.handle(c)
	}
}

type wireRelay struct {
	enc   *json.Encoder
	sc    *bufio.Scanner
	conn  net.Conn
	final []byte
}

func (w *wireRelay) Exchange(ctx context.Context, req []byte) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		w.conn.SetDeadline(dl)
		defer w.conn.SetDeadline(time.Time{})
	}
	if err := w.enc.Encode(WireMessage{Type: "eap", EAP: req}); err != nil {
		return nil, err
	}
	if !w.sc.Scan() {
		if err := w.sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("PEGC closed the connection")
	}
	var m WireMessage
	if err := json.Unmarshal(w.sc.Bytes(), &m); err != nil || m.Type != "eap" {
		return nil, fmt.Errorf("%w: PEGC sent %q instead of an EAP message", ErrMalformed, truncate(w.sc.Text()))
	}
	return m.EAP, nil
}

func (w *wireRelay) Deliver(ctx context.Context, result []byte) error {
	w.final = result // sent in the result message
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// ParseAdmit turns an admit message into an AdmitRequest.
func ParseAdmit(m WireMessage) (netip.Addr, AdmitRequest, error) {
	var req AdmitRequest
	if m.Type != "admit" {
		return netip.Addr{}, req, fmt.Errorf("%w: first message is %q, not admit", ErrBadRequest, m.Type)
	}
	pegc, err := netip.ParseAddr(m.PEGC)
	if err != nil {
		return netip.Addr{}, req, fmt.Errorf("%w: PEGC %q: %v", ErrBadRequest, m.PEGC, err)
	}
	addr, err := netip.ParseAddr(m.Addr)
	if err != nil {
		return netip.Addr{}, req, fmt.Errorf("%w: PINE address %q: %v", ErrBadRequest, m.Addr, err)
	}
	req = AdmitRequest{PINEID: m.PINEID, EAPIdentity: m.EAPIdentity, Addr: addr, Proto: m.Proto, AAA: m.AAA}
	for _, p := range m.Ports {
		r, err := smfsim.ParsePortRange(p)
		if err != nil {
			return netip.Addr{}, req, fmt.Errorf("%w: port %q: %v", ErrBadRequest, p, err)
		}
		req.Ports = append(req.Ports, r)
	}
	return pegc, req, nil
}

func (s *RelayServer) handle(c net.Conn) {
	defer c.Close()
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxWireLine)
	w := &wireRelay{enc: json.NewEncoder(c), sc: sc, conn: c}
	c.SetDeadline(time.Now().Add(s.Auth.cfg.PeerTimeout))
	if !sc.Scan() {
		return
	}
	c.SetDeadline(time.Time{})
	var m WireMessage
	result := WireMessage{Type: "result"}
	var req AdmitRequest
	var g *Grant
	err := json.Unmarshal(sc.Bytes(), &m)
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrBadRequest, err)
	} else {
		var pegc netip.Addr
		pegc, req, err = ParseAdmit(m)
		if err == nil {
			upf, ok := s.Session(pegc)
			if !ok {
				err = fmt.Errorf("%w: no PDU session of PEGC %s", ErrBadRequest, pegc)
			} else {
				g, err = s.Auth.Admit(context.Background(), upf, req, w)
			}
		}
	}
	if err != nil {
		result.Error = err.Error()
	} else {
		result.OK, result.SessionID = true, g.SessionID
	}
	result.EAP = w.final
	if s.OnResult != nil {
		s.OnResult(req, g, err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := w.enc.Encode(result); err != nil {
		log.Warn("result not sent to PEGC", "err", err)
	}
}

// PEGCAdmit is the PEGC end: it asks the SMF at addr to admit a PINE and
// relays the EAP conversation to peer. It returns the result message; the
// peer has seen the final EAP-Success or EAP-Failure.
func PEGCAdmit(ctx context.Context, addr string, admit WireMessage, peer *eap.Peer) (WireMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return WireMessage{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	admit.Type = "admit"
	enc := json.NewEncoder(c)
	if err := enc.Encode(admit); err != nil {
		return WireMessage{}, err
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxWireLine)
	for sc.Scan() {
		var m WireMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return WireMessage{}, fmt.Errorf("pinauth: SMF sent %q: %w", truncate(sc.Text()), err)
		}
		switch m.Type {
		case "eap":
			resp, err := peer.Handle(m.EAP)
			if err != nil {
				return WireMessage{}, fmt.Errorf("pinauth: PINE peer: %w", err)
			}
			if resp == nil {
				return WireMessage{}, errors.New("pinauth: SMF relayed a non-request in an eap message")
			}
			if err := enc.Encode(WireMessage{Type: "eap", EAP: resp}); err != nil {
				return WireMessage{}, err
			}
		case "result":
			if len(m.EAP) > 0 {
				if _, err := peer.Handle(m.EAP); err != nil && m.OK {
					return m, fmt.Errorf("pinauth: PINE peer refused the result: %w", err)
				}
			}
			return m, nil
		default:
			return WireMessage{}, fmt.Errorf("pinauth: SMF sent message type %q", m.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return WireMessage{}, err
	}
	if ctx.Err() != nil {
		return WireMessage{}, ctx.Err()
	}
	return WireMessage{}, errors.New("pinauth: SMF closed the connection without a result")
}
