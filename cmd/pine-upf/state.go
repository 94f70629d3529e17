package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp"
)

// Files in the state directory.
const (
	recoveryFile = "recovery-time-stamp" // Unix seconds, one line
	snapshotFile = "datapath.json"       // savedState
)

// savedState is the datapath snapshot on disk: enforcer.State and what a
// reader needs to interpret the pinned maps beside it.
type savedState struct {
	Version  int            `json:"version"`
	SavedAt  time.Time      `json:"saved_at"`
	PinDir   string         `json:"pin_dir"`
	MaxRules uint32         `json:"max_rules"`
	State    enforcer.State `json:"state"`
}

const stateVersion = 1

// writeAtomic writes a file by temp file, fsync and rename, so a reader (or
// a restarted daemon) sees the old or the new content, never a torn one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// recoveryTimeStamp returns the saved PFCP Recovery Time Stamp, or saves
// now as the new one (when there is none, or fresh asks for a new one).
func recoveryTimeStamp(stateDir string, fresh bool, now time.Time) (ts time.Time, kept bool, err error) {
	path := filepath.Join(stateDir, recoveryFile)
	if !fresh {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if perr != nil || n <= 0 {
				return ts, false, fmt.Errorf("state: %s: not a Unix time: %q", path, strings.TrimSpace(string(b)))
			}
			return time.Unix(n, 0), true, nil
		case !errors.Is(err, os.ErrNotExist):
			return ts, false, fmt.Errorf("state: %w", err)
		}
	}
	ts = now.Truncate(time.Second)
	if err := writeAtomic(path, []byte(strconv.FormatInt(ts.Unix(), 10)+"\n")); err != nil {
		return ts, false, fmt.Errorf("state: save recovery time stamp: %w", err)
	}
	return ts, false, nil
}

func readSnapshot(stateDir string) (*savedState, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, snapshotFile))
	if err != nil {
		return nil, err
	}
	var s savedState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state: %s: %w", filepath.Join(stateDir, snapshotFile), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state: %s: version %d, want %d", filepath.Join(stateDir, snapshotFile), s.Version, stateVersion)
	}
	return &s, nil
}

// snapshotter saves the enforcer's bookkeeping after every change.
type snapshotter struct {
	mu       sync.Mutex
	enf      *enforcer.Enforcer
	path     string
	pinDir   string
	maxRules uint32
	log      *slog.Logger
	failures uint64
}

func (s *snapshotter) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := savedState{Version: stateVersion, SavedAt: time.Now().UTC(), PinDir: s.pinDir,
		MaxRules: s.maxRules, State: s.enf.Snapshot()}
	b, err := json.MarshalIndent(st, "", " ")
	if err == nil {
		err = writeAtomic(s.path, b)
	}
	if err != nil {
		s.failures++
		s.log.Error("save datapath snapshot", "path", s.path, "err", err)
	}
	return err
}

func (s *snapshotter) failed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// savingEnforcer is the Enforcer handed to the PFCP server: every change
// that succeeded is followed by a snapshot on disk.
type savingEnforcer struct {
	*enforcer.Enforcer
	snap *snapshotter
}

var _ pfcp.Enforcer = savingEnforcer{}

func (e savingEnforcer) InstallSession(s enforcer.Session) error {
	if err := e.Enforcer.InstallSession(s); err != nil {
		return err
	}
	e.snap.save()
	return nil
}

func (e savingEnforcer) RemoveSession(seid uint64) (enforcer.SessionReport, error) {
	rep, err := e.Enforcer.RemoveSession(seid)
	// The enforcer forgets the session even when deleting some entries
	// failed: only "not found" changed nothing.
	if !errors.Is(err, enforcer.ErrNotFound) {
		e.snap.save()
	}
	return rep, err
}
