// Command pine-smf is the SMF side of PINE authentication (package
// pinauth): it relays a PINE's EAP between its PEGC and the DN-AAA over
// RADIUS and installs the PINE's rules in pine-upf over PFCP once the
// DN-AAA accepts it; a Disconnect-Request (RFC 5176) revokes it.
//
//	pine-smf serve   --upf 127.0.0.1:8805 --ue 10.45.0.2 --gnb 192.0.2.2 \
//	                 --aaa 127.0.0.1:1812 --relay 127.0.0.1:7300 --das 127.0.0.1:3799
//	    associate with pine-upf, establish the PEGC's session (no default
//	    rule: only admitted PINEs pass), accept PEGC admission requests on
//	    --relay (the JSON-lines protocol of package pinauth) and
//	    Disconnect-Requests on --das, until SIGINT/SIGTERM; then delete the
//	    session and release the association.
//	pine-smf admit   --relay 127.0.0.1:7300 --pegc 10.45.0.2 --pine-id 1 \
//	                 --identity pine-a@psp.example --password-file pw \
//	                 --addr 10.45.0.2 --proto 17 --ports 5000-5009 [--aaa host:port]
//	    play the PEGC and the PINE's EAP-MD5 peer: ask admission, relay the
//	    EAP conversation, print the result; exit status 1 if refused.
//	pine-smf revoke  --das 127.0.0.1:3799 (--session-id ID | --user IDENTITY)
//	    send a Disconnect-Request (Message-Authenticator, Event-Timestamp)
//	    as the DN-AAA or an operator would; exit status 1 on Disconnect-NAK.
//	pine-smf demo    --upf 127.0.0.1:8805 --ue 10.45.0.2 --gnb 192.0.2.2 \
//	                 [--probe-cmd 'scripts/x.sh'] [--aaa-config deploy/freeradius]
//	    the story: A authenticates and flows, B fails and is dropped, A is
//	    revoked and dropped. Starts FreeRADIUS from --aaa-config itself. After
//	    every step --probe-cmd runs with PINE_NAME, PINE_PORT, PINE_STEP and
//	    UE_ADDR in its environment; exit 0 means the PINE's packet was
//	    forwarded, 1 dropped, anything else is an error.
//
// The RADIUS shared secret comes from --secret-file or the environment
// variable PINE_AAA_SECRET (never from the command line). The PINE
// password of admit likewise: --password-file or PINE_PASSWORD.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"layeh.com/radius"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pinauth"
	"github.com/pine-upf/pine-upf/pinauth/demo"
	"github.com/pine-upf/pine-upf/pinauth/eap"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "admit":
		err = admit(os.Args[2:])
	case "revoke":
		err = revoke(os.Args[2:])
	case "demo":
		err = runDemo(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pine-smf:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pine-smf serve|admit|revoke|demo [flags] (pine-smf <command> -h for the flags)")
	os.Exit(2)
}

func readSecret(file, env, what string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if v := os.Getenv(env); v != "" {
		return []byte(v), nil
	}
	return nil, fmt.Errorf("%s: give a file or set %s", what, env)
}

type pegcFlags struct {
	upf, nodeID, local string
	ue, gnb            string
	gnbTEID            uint
	verbose            bool
}

func (p *pegcFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.upf, "upf", "127.0.0.1:8805", "pine-upf's PFCP address")
	fs.StringVar(&p.nodeID, "node-id", "", "PFCP Node ID (default: the local socket's IP)")
	fs.StringVar(&p.local, "local", "", "local PFCP address ip:port")
	fs.StringVar(&p.ue, "ue", "10.45.0.2", "the PEGC's UE IPv4 address")
	fs.StringVar(&p.gnb, "gnb", "192.0.2.2", "the gNB's N3 address")
	fs.UintVar(&p.gnbTEID, "gnb-teid", 0x77, "the gNB's downlink TEID")
	fs.BoolVar(&p.verbose, "v", false, "log on stderr")
}

func (p *pegcFlags) logger() *slog.Logger {
	if !p.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// establish associates with pine-upf and establishes the PEGC's session.
func (p *pegcFlags) establish(ctx context.Context, log *slog.Logger) (*smfsim.Client, *smfsim.Session, netip.Addr, error) {
	ue, err := netip.ParseAddr(p.ue)
	if err != nil {
		return nil, nil, ue, fmt.Errorf("--ue: %w", err)
	}
	gnb, err := netip.ParseAddr(p.gnb)
	if err != nil {
		return nil, nil, ue, fmt.Errorf("--gnb: %w", err)
	}
	c, err := smfsim.Dial(ctx, p.upf, smfsim.Options{NodeID: p.nodeID, LocalAddr: p.local, Logger: log})
	if err != nil {
		return nil, nil, ue, err
	}
	if _, _, err := c.Associate(ctx); err != nil {
		c.Close()
		return nil, nil, ue, err
	}
	s, err := c.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, GNB: gnb, GNBTEID: uint32(p.gnbTEID)})
	if err != nil {
		c.Release(ctx)
		c.Close()
		return nil, nil, ue, err
	}
	return c, s, ue, nil
}

func teardown(c *smfsim.Client, s *smfsim.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Delete(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pine-smf: delete session:", err)
	}
	if err := c.Release(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pine-smf: release:", err)
	}
	c.Close()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var pf pegcFlags
	pf.register(fs)
	aaa := fs.String("aaa", "127.0.0.1:1812", "DN-AAA RADIUS authentication address")
	secretFile := fs.String("secret-file", "", "file holding the RADIUS shared secret (or env PINE_AAA_SECRET)")
	relayAddr := fs.String("relay", "127.0.0.1:7300", "TCP address for PEGC admission requests")
	dasAddr := fs.String("das", "127.0.0.1:3799", "UDP address for Disconnect-Requests")
	nasID := fs.String("nas-id", "pine-smf", "NAS-Identifier")
	mbrUL := fs.Uint64("default-mbr-ul", 0, "uplink MBR (bit/s) when the DN-AAA sends none; 0: none")
	mbrDL := fs.Uint64("default-mbr-dl", 0, "downlink MBR (bit/s) when the DN-AAA sends none; 0: none")
	timeout := fs.Duration("aaa-timeout", pinauth.DefaultTimeout, "RADIUS retransmission timeout")
	retries := fs.Int("aaa-retries", pinauth.DefaultRetries, "RADIUS retransmissions")
	fs.Parse(args)
	secret, err := readSecret(*secretFile, "PINE_AAA_SECRET", "RADIUS shared secret")
	if err != nil {
		return err
	}
	log := pf.logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	auth, err := pinauth.New(pinauth.Config{AAA: []pinauth.AAAServer{{Addr: *aaa, Secret: secret}},
		NASIdentifier: *nasID, Timeout: *timeout, Retries: *retries, DefaultMBRUL: *mbrUL, DefaultMBRDL: *mbrDL, Logger: log})
	if err != nil {
		return err
	}
	defer auth.Close()
	das, err := auth.ListenDisconnect(*dasAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *relayAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	c, s, ue, err := pf.establish(ctx, log)
	if err != nil {
		return err
	}
	defer teardown(c, s)
	rs := &pinauth.RelayServer{Auth: auth, Logger: log,
		Session: func(p netip.Addr) (pinauth.UPF, bool) { return s, p == ue },
		OnResult: func(req pinauth.AdmitRequest, g *pinauth.Grant, err error) {
			if err != nil {
				fmt.Printf("PINE %d (%s): refused: %v\n", req.PINEID, req.EAPIdentity, err)
				return
			}
			fmt.Printf("PINE %d (%s): admitted, session %s, MBR %d/%d bit/s, Access-Accept → rules installed %v\n",
				g.PINEID, g.EAPIdentity, g.SessionID, g.PINE.MBRUL, g.PINE.MBRDL, g.InstalledAt.Sub(g.AcceptedAt))
		}}
	go rs.Serve(ln)
	fmt.Printf("pine-smf: PEGC %s session up (UP SEID %#x, TEID %#x); admissions on %s, Disconnect-Requests on %s, DN-AAA %s\n",
		ue, s.UPSEID, s.TEID, ln.Addr(), das, *aaa)
	<-ctx.Done()
	return nil
}

func admit(args []string) error {
	fs := flag.NewFlagSet("admit", flag.ExitOnError)
	relay := fs.String("relay", "127.0.0.1:7300", "pine-smf's admission address")
	pegc := fs.String("pegc", "10.45.0.2", "the PEGC's UE address")
	id := fs.Uint("pine-id", 1, "PINE ID (1..32766)")
	identity := fs.String("identity", "", "the PINE's EAP identity")
	pwFile := fs.String("password-file", "", "file holding the PINE's password (or env PINE_PASSWORD)")
	addr := fs.String("addr", "", "the PINE's address (default: --pegc)")
	proto := fs.Uint("proto", 17, "IP protocol (0: any)")
	ports := fs.String("ports", "", "comma-separated ports or ranges (lo-hi)")
	aaa := fs.String("aaa", "", "DN-AAA address the PINE asks for (must be one pine-smf knows)")
	timeout := fs.Duration("timeout", 30*time.Second, "overall timeout")
	fs.Parse(args)
	pw, err := readSecret(*pwFile, "PINE_PASSWORD", "PINE password")
	if err != nil {
		return err
	}
	if *addr == "" {
		*addr = *pegc
	}
	m := pinauth.WireMessage{PEGC: *pegc, PINEID: uint16(*id), EAPIdentity: *identity, Addr: *addr, Proto: uint8(*proto), AAA: *aaa}
	if *ports != "" {
		m.Ports = strings.Split(*ports, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	peer := &eap.Peer{Identity: *identity, Password: pw}
	res, err := pinauth.PEGCAdmit(ctx, *relay, m, peer)
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"ok": res.OK, "session_id": res.SessionID, "error": res.Error,
		"eap_result": eap.CodeName(peer.Result())})
	fmt.Println(string(out))
	if !res.OK {
		os.Exit(1)
	}
	return nil
}

func revoke(args []string) error {
	fs := flag.NewFlagSet("revoke", flag.ExitOnError)
	das := fs.String("das", "127.0.0.1:3799", "pine-smf's Disconnect-Request address")
	secretFile := fs.String("secret-file", "", "file holding the RADIUS shared secret (or env PINE_AAA_SECRET)")
	sid := fs.String("session-id", "", "Acct-Session-Id of the admission")
	user := fs.String("user", "", "the PINE's EAP identity (all its sessions)")
	nasID := fs.String("nas-id", "", "NAS-Identifier to send (optional)")
	fs.Parse(args)
	if *sid == "" && *user == "" {
		return errors.New("revoke: --session-id or --user required")
	}
	secret, err := readSecret(*secretFile, "PINE_AAA_SECRET", "RADIUS shared secret")
	if err != nil {
		return err
	}
	wire, err := pinauth.EncodeDisconnectRequest(pinauth.NewDisconnectRequest(secret,
		pinauth.DisconnectOptions{SessionID: *sid, UserName: *user, NASIdentifier: *nasID}))
	if err != nil {
		return err
	}
	r, err := pinauth.SendDisconnect(context.Background(), *das, wire, secret, 2*time.Second, 2)
	if err != nil {
		return err
	}
	if r.Code != radius.CodeDisconnectACK {
		return fmt.Errorf("%v, Error-Cause %d", r.Code, r.ErrorCause)
	}
	fmt.Println(r.Code)
	return nil
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	var pf pegcFlags
	pf.register(fs)
	cfg := fs.String("aaa-config", "deploy/freeradius", "FreeRADIUS configuration directory")
	probeCmd := fs.String("probe-cmd", "", "shell command telling whether a PINE's packet passes (exit 0 forwarded, 1 dropped)")
	fs.Parse(args)
	log := pf.logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, s, ue, err := pf.establish(ctx, log)
	if err != nil {
		return err
	}
	defer teardown(c, s)
	o := demo.Options{Session: s, UEAddr: ue, AAAConfigDir: *cfg, Out: os.Stdout, Log: log}
	if *probeCmd != "" {
		o.Probe = func(ctx context.Context, step string, p demo.PINE) (bool, error) {
			cmd := exec.CommandContext(ctx, "sh", "-c", *probeCmd)
			cmd.Env = append(os.Environ(), "PINE_NAME="+p.Name, fmt.Sprintf("PINE_PORT=%d", p.Port),
				"PINE_STEP="+step, "UE_ADDR="+ue.String())
			cmd.Stderr = os.Stderr
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
				return true, nil
			case errors.As(err, &ee) && ee.ExitCode() == 1:
				return false, nil
			default:
				return false, err
			}
		}
	}
	_, err = demo.Run(ctx, o)
	return err
}
