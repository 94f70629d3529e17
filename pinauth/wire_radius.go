package pinauth

import (
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"

	"layeh.com/radius"
	"layeh.com/radius/rfc2869"
)

// RADIUS integrity (RFC 2865 §3, RFC 3579 §3.2, RFC 5176 §3.3). layeh.com/radius
// computes the Response and Request Authenticators; Message-Authenticator
// (HMAC-MD5 over the whole packet) it leaves to us.

var (
	errNoMA     = errors.New("no Message-Authenticator")
	errBadMA    = errors.New("bad Message-Authenticator")
	errBadAuth  = errors.New("bad Response Authenticator")
	errBadReqAu = errors.New("bad Request Authenticator")
)

// maOffset is the offset of the value of the (single) Message-Authenticator
// attribute in the encoded packet b, or -1. More than one, or one of the
// wrong length, is an error.
func maOffset(b []byte) (int, error) {
	if len(b) < 20 {
		return -1, errors.New("short packet")
	}
	off := -1
	for i := 20; i < len(b); {
		if i+2 > len(b) || int(b[i+1]) < 2 || i+int(b[i+1]) > len(b) {
			return -1, errors.New("bad attribute length")
		}
		if b[i] == byte(rfc2869.MessageAuthenticator_Type) {
			if off >= 0 {
				return -1, errors.New("two Message-Authenticators")
			}
			if b[i+1] != 18 {
				return -1, errors.New("Message-Authenticator of wrong length")
			}
			off = i + 2
		}
		i += int(b[i+1])
	}
	return off, nil
}

// computeMA is HMAC-MD5(secret, b with its authenticator field replaced by
// auth and the Message-Authenticator value zeroed).
func computeMA(b []byte, off int, auth *[16]byte, secret []byte) []byte {
	c := append([]byte(nil), b...)
	copy(c[4:20], auth[:])
	clear(c[off : off+16])
	m := hmac.New(md5.New, secret)
	m.Write(c)
	return m.Sum(nil)
}

// checkMA verifies the Message-Authenticator of b, computed with auth in
// the authenticator field.
func checkMA(b []byte, auth *[16]byte, secret []byte) error {
	off, err := maOffset(b)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadMA, err)
	}
	if off < 0 {
		return errNoMA
	}
	if !hmac.Equal(computeMA(b, off, auth, secret), b[off:off+16]) {
		return errBadMA
	}
	return nil
}

// withMA puts a zero Message-Authenticator in p (replacing any).
func withMA(p *radius.Packet) {
	p.Attributes.Del(rfc2869.MessageAuthenticator_Type)
	p.Attributes.Add(rfc2869.MessageAuthenticator_Type, make(radius.Attribute, 16))
}

// encodeAccessRequest encodes an Access-Request with a Message-Authenticator
// (the Request Authenticator is p's random one).
func encodeAccessRequest(p *radius.Packet) ([]byte, error) {
	withMA(p)
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	off, _ := maOffset(b)
	copy(b[off:], computeMA(b, off, &p.Authenticator, p.Secret))
	return b, nil
}

// EncodeDisconnectRequest encodes a Disconnect-Request (or CoA-Request)
// with a Message-Authenticator, computed over the packet with a zero
// authenticator, then the Request Authenticator (RFC 5176 §3.3).
func EncodeDisconnectRequest(p *radius.Packet) ([]byte, error) {
	withMA(p)
	p.Authenticator = [16]byte{}
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	off, _ := maOffset(b)
	var zero [16]byte
	copy(b[off:], computeMA(b, off, &zero, p.Secret))
	return requestAuthenticate(b, p.Secret), nil
}

// requestAuthenticate sets the Request Authenticator of an accounting-style
// request: MD5(Code+ID+Length+16 zero octets+Attributes+Secret).
func requestAuthenticate(b, secret []byte) []byte {
	h := md5.New()
	h.Write(b[:4])
	h.Write(make([]byte, 16))
	h.Write(b[20:])
	h.Write(secret)
	h.Sum(b[4:4:20])
	return b
}

// EncodeResponse encodes a response to a request whose authenticator is
// reqAuth: Message-Authenticator with reqAuth in the authenticator field,
// then the Response Authenticator over the result.
func EncodeResponse(p *radius.Packet, reqAuth [16]byte) ([]byte, error) {
	withMA(p)
	p.Authenticator = reqAuth
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	off, _ := maOffset(b)
	copy(b[off:], computeMA(b, off, &reqAuth, p.Secret))
	h := md5.New()
	h.Write(b[:4])
	h.Write(reqAuth[:])
	h.Write(b[20:])
	h.Write(p.Secret)
	h.Sum(b[4:4:20])
	return b, nil
}

// verifyResponse checks a response b to the request req (both encoded):
// identifier, Response Authenticator, and the Message-Authenticator, which
// is mandatory (every request we send carries one, and every answer to an
// EAP exchange must, RFC 3579 §3.2).
func verifyResponse(b, req, secret []byte) error {
	if len(b) < 20 || b[1] != req[1] {
		return errors.New("identifier mismatch")
	}
	if !radius.IsAuthenticResponse(b, req, secret) {
		return errBadAuth
	}
	var reqAuth [16]byte
	copy(reqAuth[:], req[4:20])
	return checkMA(b, &reqAuth, secret)
}

// VerifyDisconnectRequest checks the Request Authenticator and the
// Message-Authenticator of a Disconnect-Request or CoA-Request.
func VerifyDisconnectRequest(b, secret []byte) error {
	if !radius.IsAuthenticRequest(b, secret) {
		return errBadReqAu
	}
	var zero [16]byte
	return checkMA(b, &zero, secret)
}
