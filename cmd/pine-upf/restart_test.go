package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
)

// The example configuration in deploy/ is valid.
func TestDeployConfigValidates(t *testing.T) {
	cfg, err := loadConfigFile("../../deploy/pine-upf.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
}

// With --keep-datapath the programs keep enforcing while no daemon runs;
// the next daemon adopts the pinned maps, restores the saved sessions and
// keeps the recovery time stamp.
func TestRestartKeepsDatapath(t *testing.T) {
	w, cfg := daemonWorld(t)
	pinDir, stateDir := cfg.PinDir, cfg.State
	p, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	start := func(opts runOptions) (*daemon, func() error) {
		t.Helper()
		return startDaemon(t, w, p, opts, newLogger(logs, p))
	}

	d1, stop1 := start(runOptions{keepDatapath: true})
	ctx := context.Background()
	var smf *smfsim.Client
	if err := w.UPF.Do(func() (err error) {
		smf, err = smfsim.Dial(ctx, d1.srv.Addr().String(), smfsim.Options{Timeout: time.Second})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer smf.Close()
	if _, _, err := smf.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := smf.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: e2eUE, GNB: dptest.GNBv4, GNBTEID: e2eGNBTEID,
		PINEs: []smfsim.PINE{{ID: 1, Addr: e2eUE, Proto: 17, Ports: []smfsim.PortRange{{Lo: portA, Hi: portA}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rts1, _ := os.ReadFile(filepath.Join(stateDir, recoveryFile))
	if err := stop1(); err != nil {
		t.Fatal(err)
	}

	// No daemon: the pinned datapath still enforces.
	echo := startEcho(t, w.DN, netip4(e2eServer, 7))
	gnb := openGNB(t, w.GNB, dptest.GNBv4)
	gnb.sendGPDU(t, sess.TEID, portA, "while down")
	if got := echo.wait(time.Second); got == nil || got.payload != "while down" {
		t.Fatalf("with the daemon stopped and the datapath kept, A got %+v", got)
	}
	gnb.sendGPDU(t, sess.TEID, portB, "B while down")
	if got := echo.wait(300 * time.Millisecond); got != nil {
		t.Fatalf("B passed while the daemon was down: %+v", got)
	}

	// A crash can leave a session file whose session the maps no longer
	// have (the process died between removing it and unlinking its file),
	// and temp files of interrupted writes.
	real, err := os.ReadFile(sessionPath(stateDir, sess.UPSEID))
	if err != nil {
		t.Fatal(err)
	}
	var ghost sessionFile
	if err := json.Unmarshal(real, &ghost); err != nil {
		t.Fatal(err)
	}
	const ghostSEID = 0x6e0571
	ghost.PFCP.SEID, ghost.PFCP.Installed.SEID, ghost.Datapath.Session.SEID = ghostSEID, ghostSEID, ghostSEID
	ghost.Datapath.SID = 1000
	b, _ := json.Marshal(ghost)
	if err := os.WriteFile(sessionPath(stateDir, ghostSEID), b, 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(stateDir, sessionsDir, ".0000000000000001.json.tmp-123")
	os.WriteFile(tmp, []byte("{"), 0o600)

	// The next daemon adopts it.
	d2, stop2 := start(runOptions{})
	if got := d2.enf.SEIDs(); len(got) != 1 {
		t.Fatalf("restored sessions %v, want 1", got)
	}
	if st := d2.srv.ExportState(); len(st.Sessions) != 1 || st.Sessions[0].SEID != sess.UPSEID || len(st.Associations) != 1 {
		t.Errorf("PFCP state after the restart: %+v, want the session and its association", st)
	}
	for _, f := range []string{sessionPath(stateDir, ghostSEID), tmp} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s left after the restart: %v", f, err)
		}
	}
	if !strings.Contains(logs.String(), "saved session no longer in the datapath") {
		t.Error("the lost session was not logged")
	}
	rts2, _ := os.ReadFile(filepath.Join(stateDir, recoveryFile))
	if string(rts1) != string(rts2) || len(rts1) == 0 {
		t.Errorf("recovery time stamp %q, then %q: want it kept", rts1, rts2)
	}
	gnb.sendGPDU(t, sess.TEID, portA, "after restart")
	if got := echo.wait(time.Second); got == nil || got.payload != "after restart" {
		t.Fatalf("after the restart A got %+v", got)
	}
	rep, err := inspect(pinDir, stateDir, true)
	if err != nil || len(rep.Sessions) != 1 {
		t.Fatalf("inspect after restart: %+v, %v", rep, err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(pinDir); len(ents) != 0 {
		t.Errorf("pins left after a normal shutdown: %v", ents)
	}
}
