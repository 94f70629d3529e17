package eap

import (
	"bytes"
	"crypto/md5"
	"errors"
	"testing"
)

func TestParseMarshalRoundTrip(t *testing.T) {
	for _, p := range []Packet{
		IdentityRequest(7),
		{Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte("pine-a@psp.example")},
		{Code: CodeSuccess, ID: 9},
		{Code: CodeFailure, ID: 9},
	} {
		q, err := Parse(p.Marshal())
		if err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		if !Equal(p, q) && !(len(p.Data) == 0 && len(q.Data) == 0 && p.Code == q.Code && p.ID == q.ID && p.Type == q.Type) {
			t.Errorf("round trip %v → %v", p, q)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":           {1, 1, 0},
		"length mismatch": {1, 1, 0, 9, 1},
		"bad code":        {9, 1, 0, 4},
		"long success":    {3, 1, 0, 5, 0},
		"request no type": {1, 1, 0, 4},
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

// The RFC 1994 computation, done independently.
func TestPeerMD5(t *testing.T) {
	p := &Peer{Identity: "pine-a", Password: []byte("pw")}
	challenge := []byte("0123456789abcdef")
	req := Packet{Code: CodeRequest, ID: 42, Type: TypeMD5Challenge, Data: append([]byte{16}, challenge...)}
	b, err := p.Handle(req.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := md5.Sum(append(append([]byte{42}, "pw"...), challenge...))
	if resp.Type != TypeMD5Challenge || resp.ID != 42 || resp.Data[0] != 16 || !bytes.Equal(resp.Data[1:17], want[:]) {
		t.Fatalf("response %v %x", resp, resp.Data)
	}
	// Retransmitted request: same response.
	b2, _ := p.Handle(req.Marshal())
	if !bytes.Equal(b, b2) {
		t.Error("retransmission answered differently")
	}
	if _, err := p.Handle(Packet{Code: CodeSuccess, ID: 43}.Marshal()); err != nil || !p.Succeeded() {
		t.Errorf("success not recorded: %v", err)
	}
}

func TestPeerNaksOtherMethods(t *testing.T) {
	p := &Peer{Identity: "x"}
	b, err := p.Handle(Packet{Code: CodeRequest, ID: 1, Type: 25}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Parse(b)
	if r.Type != TypeNak || !bytes.Equal(r.Data, []byte{TypeMD5Challenge}) {
		t.Errorf("got %v %x, want Nak proposing MD5", r, r.Data)
	}
}

func TestPeerRefusesSuccessWithoutChallenge(t *testing.T) {
	p := &Peer{Identity: "x"}
	if _, err := p.Handle(Packet{Code: CodeSuccess, ID: 1}.Marshal()); err == nil || p.Succeeded() {
		t.Error("EAP-Success without a challenge accepted")
	}
}
