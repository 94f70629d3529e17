// Package eap is the small part of EAP (RFC 3748) that PINE authentication
// needs: the packet codec, and a peer — the PINE's side — that answers
// Identity, Notification and MD5-Challenge (RFC 3748 §5.4) requests and
// refuses every other method with a legacy Nak proposing MD5.
//
// The authenticator (package pinauth) relays EAP between the peer and the
// DN-AAA; it only parses packets to learn their code and identifier and to
// check that a PINE's Identity response matches the identity its PEGC
// claimed.
package eap

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
)

// Codes (RFC 3748 §4).
const (
	CodeRequest  uint8 = 1
	CodeResponse uint8 = 2
	CodeSuccess  uint8 = 3
	CodeFailure  uint8 = 4
)

// Method types (RFC 3748 §5).
const (
	TypeIdentity     uint8 = 1
	TypeNotification uint8 = 2
	TypeNak          uint8 = 3
	TypeMD5Challenge uint8 = 4
)

// MaxLength bounds the packets this package accepts (EAP over RADIUS allows
// more, but nothing EAP-MD5 sends comes close).
const MaxLength = 4096

// Packet is an EAP packet. Type and Data are empty for Success and Failure.
type Packet struct {
	Code uint8
	ID   uint8
	Type uint8
	Data []byte
}

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("eap: malformed packet")

// Parse decodes one EAP packet; b must hold exactly the packet (the Length
// field must equal len(b)).
func Parse(b []byte) (Packet, error) {
	if len(b) < 4 {
		return Packet{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if len(b) > MaxLength {
		return Packet{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxLength)
	}
	p := Packet{Code: b[0], ID: b[1]}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n != len(b) {
		return Packet{}, fmt.Errorf("%w: Length %d, %d bytes", ErrMalformed, n, len(b))
	}
	switch p.Code {
	case CodeSuccess, CodeFailure:
		if n != 4 {
			return Packet{}, fmt.Errorf("%w: %s with %d bytes", ErrMalformed, CodeName(p.Code), n)
		}
	case CodeRequest, CodeResponse:
		if n < 5 {
			return Packet{}, fmt.Errorf("%w: %s without Type", ErrMalformed, CodeName(p.Code))
		}
		p.Type = b[4]
		p.Data = append([]byte(nil), b[5:]...)
	default:
		return Packet{}, fmt.Errorf("%w: Code %d", ErrMalformed, p.Code)
	}
	return p, nil
}

// Marshal encodes p.
func (p Packet) Marshal() []byte {
	n := 4
	if p.Code == CodeRequest || p.Code == CodeResponse {
		n += 1 + len(p.Data)
	}
	b := make([]byte, n)
	b[0], b[1] = p.Code, p.ID
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	if n > 4 {
		b[4] = p.Type
		copy(b[5:], p.Data)
	}
	return b
}

func (p Packet) String() string {
	if p.Code == CodeRequest || p.Code == CodeResponse {
		return fmt.Sprintf("EAP-%s/%s id=%d len=%d", CodeName(p.Code), TypeName(p.Type), p.ID, 5+len(p.Data))
	}
	return fmt.Sprintf("EAP-%s id=%d", CodeName(p.Code), p.ID)
}

// CodeName names an EAP code.
func CodeName(c uint8) string {
	switch c {
	case CodeRequest:
		return "Request"
	case CodeResponse:
		return "Response"
	case CodeSuccess:
		return "Success"
	case CodeFailure:
		return "Failure"
	}
	return fmt.Sprintf("Code(%d)", c)
}

// TypeName names an EAP method type.
func TypeName(t uint8) string {
	switch t {
	case TypeIdentity:
		return "Identity"
	case TypeNotification:
		return "Notification"
	case TypeNak:
		return "Nak"
	case TypeMD5Challenge:
		return "MD5-Challenge"
	case 13:
		return "TLS"
	case 21:
		return "TTLS"
	case 25:
		return "PEAP"
	}
	return fmt.Sprintf("Type(%d)", t)
}

// IdentityRequest is the authenticator's first message.
func IdentityRequest(id uint8) Packet {
	return Packet{Code: CodeRequest, ID: id, Type: TypeIdentity}
}

// MD5Response computes the EAP-MD5 response value, MD5(Identifier ||
// secret || challenge) (RFC 1994 §4.1, RFC 3748 §5.4).
func MD5Response(id uint8, secret, challenge []byte) [16]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// Peer is a PINE's EAP peer. It is not safe for concurrent use: one
// conversation at a time.
type Peer struct {
	Identity string
	Password []byte
	// Name is sent in MD5-Challenge responses (optional).
	Name string

	lastReqID  uint8
	lastResp   []byte
	haveResp   bool
	result     uint8 // CodeSuccess or CodeFailure once finished
	challenged bool
	// Notifications are the texts of the EAP-Notification requests received.
	Notifications []string
}

// Handle processes one packet from the authenticator. For a Request it
// returns the Response to send; for Success or Failure it returns nil and
// records the result. A retransmitted request (same identifier as the
// previous one) gets the previous response again (RFC 3748 §4.1).
func (p *Peer) Handle(b []byte) ([]byte, error) {
	req, err := Parse(b)
	if err != nil {
		return nil, err
	}
	switch req.Code {
	case CodeSuccess:
		// RFC 3748 §4.2: a Success before the method finished is not
		// acceptable for a method with mutual authentication; MD5 has none,
		// but a Success without any challenge means the authenticator
		// skipped authentication — count it as a failure.
		if !p.challenged {
			p.result = CodeFailure
			return nil, errors.New("eap: EAP-Success before any challenge")
		}
		p.result = CodeSuccess
		return nil, nil
	case CodeFailure:
		p.result = CodeFailure
		return nil, nil
	case CodeResponse:
		return nil, fmt.Errorf("%w: a peer does not accept %v", ErrMalformed, req)
	}
	if p.haveResp && req.ID == p.lastReqID {
		return p.lastResp, nil
	}
	resp := Packet{Code: CodeResponse, ID: req.ID, Type: req.Type}
	switch req.Type {
	case TypeIdentity:
		resp.Data = []byte(p.Identity)
	case TypeNotification:
		p.Notifications = append(p.Notifications, string(req.Data))
	case TypeMD5Challenge:
		if len(req.Data) < 1 || int(req.Data[0]) == 0 || int(req.Data[0]) > len(req.Data)-1 {
			return nil, fmt.Errorf("%w: MD5-Challenge value size", ErrMalformed)
		}
		challenge := req.Data[1 : 1+int(req.Data[0])]
		v := MD5Response(req.ID, p.Password, challenge)
		resp.Data = append(append([]byte{16}, v[:]...), p.Name...)
		p.challenged = true
	default:
		// Legacy Nak (RFC 3748 §5.3.1): we only do MD5-Challenge.
		resp.Type = TypeNak
		resp.Data = []byte{TypeMD5Challenge}
	}
	out := resp.Marshal()
	p.lastReqID, p.lastResp, p.haveResp = req.ID, out, true
	return out, nil
}

// Result is CodeSuccess or CodeFailure once the conversation ended, else 0.
func (p *Peer) Result() uint8 { return p.result }

// Succeeded tells whether the peer received EAP-Success after a challenge.
func (p *Peer) Succeeded() bool { return p.result == CodeSuccess }

// Reset forgets the previous conversation.
func (p *Peer) Reset() {
	p.lastReqID, p.lastResp, p.haveResp, p.result, p.challenged = 0, nil, false, 0, false
	p.Notifications = nil
}

// Equal reports whether a and b encode the same packet.
func Equal(a, b Packet) bool {
	return a.Code == b.Code && a.ID == b.ID && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}
