package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp"
)

// Files in the state directory. See store for the layout.
const (
	recoveryFile = "recovery-time-stamp" // Unix seconds, one line
	nodeFile     = "node.json"           // nodeState: associations, pin dir, map sizes
	sessionsDir  = "sessions"            // one sessionFile per session, <UP SEID %016x>.json
	// snapshotFile is the single-file datapath snapshot of earlier
	// versions (savedState). A daemon finding one adopts its sessions for
	// the sweep, removes them (the PFCP side of them was never saved) and
	// deletes the file.
	snapshotFile = "datapath.json"
)

// savedState is the legacy datapath snapshot: enforcer.State and what a
// reader needs to interpret the pinned maps beside it.
type savedState struct {
	Version  int            `json:"version"`
	SavedAt  time.Time      `json:"saved_at"`
	PinDir   string         `json:"pin_dir"`
	MaxRules uint32         `json:"max_rules"`
	State    enforcer.State `json:"state"`
}

const stateVersion = 1

// writeAtomic writes a file by temp file and rename, so a reader (or a
// restarted daemon) sees the old or the new content, never a torn one.
//
// No fsync: the files describe pinned kernel maps, which a process crash
// leaves in place (and with them the page cache holding the files) and a
// host crash takes away (a daemon finding no pinned datapath starts with a
// new Recovery Time Stamp and forgets the files). An fsync per change would
// only cost: ~1 ms per PFCP request on this class of disk.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
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

// The saved state is per session, so that a change costs what the session
// it touches costs, whatever the number of sessions:
//
//	state_dir/
//	  recovery-time-stamp    our PFCP Recovery Time Stamp (kept across restarts)
//	  node.json              nodeState: version, pin dir, map sizes, associations
//	  sessions/<seid>.json   sessionFile: the PFCP session (pfcp.SessionState)
//	                         and its datapath bookkeeping (enforcer.SessionState)
//
// Every file is written whole by temp file and rename (writeAtomic): a
// reader sees the old or the new content. A session's
// PFCP and datapath halves live in one file, so they never disagree with
// each other; what a crash can leave is a file older than the maps (the
// process died between the datapath change and the write: the request was
// never answered) or a file of a session the maps no longer have (died
// between RemoveSession and the unlink). Restart handles both: Restore
// brings the maps back to the files (sweeping the unanswered change), and
// sessions Restore reports lost are dropped from the PFCP state.
type nodeState struct {
	Version           int                     `json:"version"`
	SavedAt           time.Time               `json:"saved_at"`
	PinDir            string                  `json:"pin_dir"`
	MaxRules          uint32                  `json:"max_rules"`
	RecoveryTimeStamp time.Time               `json:"recovery_time_stamp"`
	Associations      []pfcp.AssociationState `json:"associations"`
}

type sessionFile struct {
	Version  int                   `json:"version"`
	SavedAt  time.Time             `json:"saved_at"`
	PFCP     *pfcp.SessionState    `json:"pfcp"`
	Datapath enforcer.SessionState `json:"datapath"`
}

const storeVersion = 2

func sessionPath(stateDir string, seid uint64) string {
	return filepath.Join(stateDir, sessionsDir, fmt.Sprintf("%016x.json", seid))
}

// sessionSnapshotter is what the store needs of the enforcer.
type sessionSnapshotter interface {
	SnapshotSession(seid uint64) (enforcer.SessionState, bool)
}

// store persists the PFCP server's changes (its OnChange) with the
// datapath bookkeeping of the sessions they touch.
type store struct {
	mu       sync.Mutex
	dir      string // state directory
	node     nodeState
	enf      sessionSnapshotter
	log      *slog.Logger
	failures uint64
	writes   uint64        // files written or removed
	bytes    uint64        // bytes written
	spent    time.Duration // time in apply
}

func newStore(dir, pinDir string, maxRules uint32, rts time.Time, enf sessionSnapshotter, log *slog.Logger) (*store, error) {
	if err := os.MkdirAll(filepath.Join(dir, sessionsDir), 0o700); err != nil {
		return nil, err
	}
	return &store{dir: dir, enf: enf, log: log,
		node: nodeState{Version: storeVersion, PinDir: pinDir, MaxRules: maxRules, RecoveryTimeStamp: rts,
			Associations: []pfcp.AssociationState{}}}, nil
}

// saveNode writes node.json (under s.mu).
func (s *store) saveNode() error {
	s.node.SavedAt = time.Now().UTC()
	b, err := json.Marshal(s.node)
	if err != nil {
		return err
	}
	s.bytes += uint64(len(b))
	s.writes++
	return writeAtomic(filepath.Join(s.dir, nodeFile), b)
}

// setAssociations saves the associations (at start, after the import).
func (s *store) setAssociations(a []pfcp.AssociationState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a == nil {
		a = []pfcp.AssociationState{}
	}
	s.node.Associations = a
	return s.saveNode()
}

// apply is pfcp.Config.OnChange: it writes the files of the sessions the
// change touched (their PFCP state with the enforcer's bookkeeping),
// removes those of removed sessions and rewrites node.json when the
// associations changed.
func (s *store) apply(c pfcp.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	defer func() { s.spent += time.Since(start) }()
	var errs []error
	for i := range c.Sessions {
		ps := &c.Sessions[i]
		ds, ok := s.enf.SnapshotSession(ps.SEID)
		if !ok {
			errs = append(errs, fmt.Errorf("session %#x: not in the datapath", ps.SEID))
			continue
		}
		b, err := json.Marshal(sessionFile{Version: storeVersion, SavedAt: time.Now().UTC(), PFCP: ps, Datapath: ds})
		if err == nil {
			err = writeAtomic(sessionPath(s.dir, ps.SEID), b)
		}
		s.writes++
		s.bytes += uint64(len(b))
		if err != nil {
			errs = append(errs, fmt.Errorf("session %#x: %w", ps.SEID, err))
		}
	}
	if len(c.Removed) > 0 {
		for _, seid := range c.Removed {
			s.writes++
			if err := os.Remove(sessionPath(s.dir, seid)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if c.Associations != nil {
		s.node.Associations = c.Associations
		errs = append(errs, s.saveNode())
	}
	err := errors.Join(errs...)
	if err != nil {
		s.failures++
		s.log.Error("save state", "dir", s.dir, "err", err)
	}
	return err
}

// storeStats is what the store did, for metrics and the cost measurement.
type storeStats struct {
	Failures, Writes, Bytes uint64
	Spent                   time.Duration
}

func (s *store) stats() storeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return storeStats{s.failures, s.writes, s.bytes, s.spent}
}

func (s *store) failed() uint64 { return s.stats().Failures }

// loadedState is what a previous run left in the state directory.
type loadedState struct {
	node     *nodeState             // nil: none
	sessions map[uint64]sessionFile // by UP SEID
	legacy   []enforcer.SessionState
	legacyAt time.Time
	bad      []string // files that could not be read (their sessions are not restored)
	temps    []string // temp files of writes a crash interrupted
}

// loadState reads the state directory. Unreadable session files are
// reported in bad, not fatal: their sessions are swept from the datapath.
func loadState(dir string) (*loadedState, error) {
	ld := &loadedState{sessions: map[uint64]sessionFile{}}
	b, err := os.ReadFile(filepath.Join(dir, nodeFile))
	switch {
	case err == nil:
		var n nodeState
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, fmt.Errorf("state: %s: %w", filepath.Join(dir, nodeFile), err)
		}
		if n.Version != storeVersion {
			return nil, fmt.Errorf("state: %s: version %d, want %d", filepath.Join(dir, nodeFile), n.Version, storeVersion)
		}
		ld.node = &n
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("state: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, sessionsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("state: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, sessionsDir, name)
		if strings.HasPrefix(name, ".") { // a temp file of a write that never finished
			ld.temps = append(ld.temps, path)
			continue
		}
		seid, perr := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 16, 64)
		if perr != nil || !strings.HasSuffix(name, ".json") {
			ld.bad = append(ld.bad, path)
			continue
		}
		var f sessionFile
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &f)
		}
		if err == nil && (f.Version != storeVersion || f.PFCP == nil || f.PFCP.SEID != seid || f.Datapath.Session.SEID != seid) {
			err = fmt.Errorf("version %d, or SEIDs disagree with the file name", f.Version)
		}
		if err != nil {
			ld.bad = append(ld.bad, path)
			continue
		}
		ld.sessions[seid] = f
	}
	if old, err := readSnapshot(dir); err == nil {
		ld.legacy, ld.legacyAt = old.State.Sessions, old.SavedAt
		if ld.node == nil {
			ld.node = &nodeState{PinDir: old.PinDir, MaxRules: old.MaxRules}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return ld, nil
}

// datapathState is the enforcer.State to restore: every session file's
// datapath half, and legacy sessions no file names.
func (ld *loadedState) datapathState() enforcer.State {
	var st enforcer.State
	for _, seid := range slices.Sorted(maps.Keys(ld.sessions)) {
		st.Sessions = append(st.Sessions, ld.sessions[seid].Datapath)
	}
	for _, ss := range ld.legacy {
		if _, ok := ld.sessions[ss.Session.SEID]; !ok {
			st.Sessions = append(st.Sessions, ss)
		}
	}
	return st
}

// clearState removes the saved associations and sessions (not the
// recovery time stamp).
func clearState(dir string) error {
	var errs []error
	for _, f := range []string{nodeFile, snapshotFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, os.RemoveAll(filepath.Join(dir, sessionsDir)))
	return errors.Join(errs...)
}
