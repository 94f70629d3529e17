// Package demo is the PINE authentication story for `make demo`: against a
// pine-upf reachable over PFCP and a DN-AAA (a FreeRADIUS it starts from
// deploy/freeradius unless one is given),
//
//  1. PINE A authenticates with EAP-MD5 and its traffic flows;
//  2. PINE B fails authentication (wrong password) and its traffic is dropped;
//  3. the DN-AAA revokes A with a Disconnect-Request, and A is dropped from
//     then on.
//
// Traffic is the caller's business: after every step Run calls Probe for
// both PINEs (the demo script sends a packet through its namespaces; the
// tests run one through the datapath with BPF_PROG_TEST_RUN) and prints
// the verdicts with what was expected.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth"
	"github.com/pine-upf/pine-upf/pinauth/eap"
	"github.com/pine-upf/pine-upf/pinauth/freeradius"
)

// PINE is one demo PINE.
type PINE struct {
	Name     string
	ID       uint16
	Identity string
	Password string // what the PINE uses (B's is wrong)
	Port     uint16 // its UDP port (NAT'd behind the PEGC's UE address)
}

// The demo PINEs; their real credentials are in deploy/freeradius/users.
var (
	A = PINE{Name: "A", ID: 1, Identity: "pine-a@psp.example", Password: "correct horse battery staple", Port: 5000}
	B = PINE{Name: "B", ID: 2, Identity: "pine-b@psp.example", Password: "not B's password", Port: 5100}
)

// Options of Run.
type Options struct {
	// Session is the PEGC's PFCP session in pine-upf (established by the
	// caller, e.g. with smfsim; no default rule, so only PINE rules pass).
	Session *smfsim.Session
	// UEAddr is the PEGC's UE address (the PINEs' address).
	UEAddr netip.Addr
	// AAA and Secret name a running DN-AAA; empty: Run starts FreeRADIUS
	// from AAAConfigDir (default deploy/freeradius).
	AAA, Secret  string
	AAAConfigDir string
	// Probe reports whether a packet of the PINE passes now. Nil: no
	// traffic, only the control-plane outcome is printed.
	Probe func(ctx context.Context, step string, p PINE) (allowed bool, err error)
	Out   io.Writer
	Log   *slog.Logger
}

// Step is one line of the outcome.
type Step struct {
	Step, PINE       string
	Allowed, Want    bool
	Probed           bool
	Note             string
	AcceptToInstall  time.Duration // for an admission
	AcceptToAllowed  time.Duration // Access-Accept → the first allowed probe
	SuccessToAllowed time.Duration // PINE got EAP-Success → the first allowed probe
}

// Run plays the story and returns its steps; the error says what went
// other than planned.
func Run(ctx context.Context, o Options) ([]Step, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.AAA == "" {
		o.Secret = "pine-demo-secret"
		srv, err := freeradius.Start(ctx, freeradius.Options{ConfigDir: o.AAAConfigDir, Secret: o.Secret})
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
		o.AAA = srv.Addr
		fmt.Fprintf(o.Out, "DN-AAA: FreeRADIUS on %s (EAP-MD5)\n", o.AAA)
	}
	auth, err := pinauth.New(pinauth.Config{AAA: []pinauth.AAAServer{{Addr: o.AAA, Secret: []byte(o.Secret)}},
		Timeout: time.Second, Retries: 2, Logger: o.Log})
	if err != nil {
		return nil, err
	}
	defer auth.Close()
	das, err := auth.ListenDisconnect("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	relay := &pinauth.RelayServer{Auth: auth, Logger: o.Log,
		Session: func(p netip.Addr) (pinauth.UPF, bool) { return o.Session, p == o.UEAddr }}
	go relay.Serve(ln)

	var steps []Step
	var problems []error
	probe := func(step string, p PINE, want bool, st Step) Step {
		st.Step, st.PINE, st.Want = step, p.Name, want
		if o.Probe != nil {
			ok, err := o.Probe(ctx, step, p)
			if err != nil {
				problems = append(problems, fmt.Errorf("%s, PINE %s: probe: %w", step, p.Name, err))
			}
			st.Allowed, st.Probed = ok, true
			if ok != want {
				problems = append(problems, fmt.Errorf("%s, PINE %s: traffic allowed=%v, want %v", step, p.Name, ok, want))
			}
		}
		verdict := "-"
		if st.Probed {
			verdict = map[bool]string{true: "FORWARDED", false: "DROPPED"}[st.Allowed]
		}
		fmt.Fprintf(o.Out, "%-34s PINE %s  traffic %-9s (expected %s)  %s\n", step, p.Name, verdict,
			map[bool]string{true: "forwarded", false: "dropped"}[want], st.Note)
		steps = append(steps, st)
		return st
	}
	admit := func(p PINE) (pinauth.WireMessage, *eap.Peer, time.Time, error) {
		peer := &eap.Peer{Identity: p.Identity, Password: []byte(p.Password)}
		res, err := pinauth.PEGCAdmit(ctx, ln.Addr().String(), pinauth.WireMessage{PEGC: o.UEAddr.String(),
			PINEID: p.ID, EAPIdentity: p.Identity, Addr: o.UEAddr.String(), Proto: 17,
			Ports: []string{fmt.Sprint(p.Port)}}, peer)
		return res, peer, time.Now(), err
	}

	probe("0. before any authentication", A, false, Step{})
	probe("0. before any authentication", B, false, Step{})

	resA, peerA, doneA, err := admit(A)
	if err != nil || !resA.OK {
		return steps, fmt.Errorf("PINE A not admitted: %v %s", err, resA.Error)
	}
	g := auth.Lookup(resA.SessionID)
	st := Step{Note: fmt.Sprintf("EAP-MD5 ok, EAP-Success at the PINE=%v, session %s", peerA.Succeeded(), resA.SessionID)}
	if g != nil {
		st.AcceptToInstall = g.InstalledAt.Sub(g.AcceptedAt)
	}
	allowedAt := time.Now()
	st = probe("1. A authenticates", A, true, st)
	if st.Probed && st.Allowed && g != nil {
		st.AcceptToAllowed = allowedAt.Sub(g.AcceptedAt)
		st.SuccessToAllowed = allowedAt.Sub(doneA)
		steps[len(steps)-1] = st
		fmt.Fprintf(o.Out, "   Access-Accept → rules installed %v; → first packet forwarded %v\n",
			st.AcceptToInstall.Round(time.Microsecond), st.AcceptToAllowed.Round(time.Microsecond))
	}

	resB, peerB, _, err := admit(B)
	if err != nil || resB.OK {
		problems = append(problems, fmt.Errorf("PINE B: admitted=%v err=%v", resB.OK, err))
	}
	probe("2. B fails authentication", B, false, Step{Note: fmt.Sprintf("EAP-Failure at the PINE=%v: %s",
		peerB.Result() == eap.CodeFailure, resB.Error)})
	probe("2. B fails authentication", A, true, Step{})

	req := pinauth.NewDisconnectRequest([]byte(o.Secret), pinauth.DisconnectOptions{SessionID: resA.SessionID, UserName: A.Identity})
	wire, err := pinauth.EncodeDisconnectRequest(req)
	if err != nil {
		return steps, err
	}
	// The DN-AAA's Disconnect-Request comes from its host (loopback here).
	r, err := pinauth.SendDisconnect(ctx, das.String(), wire, []byte(o.Secret), time.Second, 2)
	if err != nil {
		return steps, fmt.Errorf("Disconnect-Request: %w", err)
	}
	probe("3. DN-AAA revokes A", A, false, Step{Note: fmt.Sprintf("Disconnect-Request → %v", r.Code)})
	probe("3. DN-AAA revokes A", B, false, Step{})
	return steps, errors.Join(problems...)
}
