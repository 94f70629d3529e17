package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pine-upf/pine-upf/enforcer"
)

// inspectReport is what `pine-upf inspect --json` prints.
type inspectReport struct {
	SavedAt  time.Time        `json:"saved_at"`
	PinDir   string           `json:"pin_dir"`
	Live     bool             `json:"live"` // counters read from the pinned maps
	Sessions []inspectSession `json:"sessions"`
	Stats    *inspectStats    `json:"stats,omitempty"`
}

type inspectSession struct {
	SEID      uint64        `json:"seid"`
	SID       uint32        `json:"sid"`
	TEIDs     []uint32      `json:"teids"`
	UEv4      string        `json:"ue_ipv4,omitempty"`
	UEv6      string        `json:"ue_ipv6_prefix,omitempty"`
	Forwarded [2]counterOut `json:"forwarded"` // [uplink, downlink]
	Dropped   [2]counterOut `json:"dropped"`
	Rules     []inspectRule `json:"rules"`
}

type inspectRule struct {
	ID         uint32     `json:"id"`
	Direction  string     `json:"direction"`
	Precedence uint32     `json:"precedence"`
	Addr       string     `json:"addr"`
	Protocol   uint8      `json:"protocol"`
	Ports      string     `json:"ports"`
	Action     string     `json:"action"`
	Usage      counterOut `json:"usage"`
}

type counterOut struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

type inspectStats struct {
	Packets map[string]map[string]counterOut `json:"packets"` // direction → reason → counter
	Events  enforcer.EventStats              `json:"deny_events"`
}

func newInspectCmd(stdout io.Writer) *cobra.Command {
	var pinDir, stateDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Print the sessions, PINE rules and counters of a running (or kept) datapath",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := inspect(pinDir, stateDir, cmd.Flags().Changed("pin-dir"))
			if err != nil {
				return &exitError{1, err}
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(stdout, rep)
			return nil
		},
	}
	d := defaultConfig()
	cmd.Flags().StringVar(&pinDir, "pin-dir", d.PinDir, "the daemon's pin directory (default: the one in the saved state)")
	cmd.Flags().StringVar(&stateDir, "state-dir", d.State, "the daemon's state directory")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func inspect(pinDir, stateDir string, pinDirGiven bool) (*inspectReport, error) {
	saved, err := readSaved(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("inspect: no saved state in %s (is pine-upf running with this --state-dir and a pin directory?)", stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	if !pinDirGiven && saved.PinDir != "" {
		pinDir = saved.PinDir
	}
	rep := &inspectReport{SavedAt: saved.SavedAt, PinDir: pinDir, Sessions: []inspectSession{}}
	var pinned *enforcer.Pinned
	if pinDir != "" {
		pinned, err = enforcer.OpenPinned(pinDir, saved.MaxRules)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		defer pinned.Close()
		rep.Live = true
		st, err := pinned.Stats()
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		rep.Stats = &inspectStats{Packets: map[string]map[string]counterOut{}, Events: st.Events}
		for d, byReason := range st.Packets {
			m := map[string]counterOut{}
			for r, c := range byReason {
				if c.Packets > 0 {
					m[enforcer.Reason(r).String()] = counterOut{c.Packets, c.Bytes}
				}
			}
			rep.Stats.Packets[enforcer.Direction(d).String()] = m
		}
	}
	for _, ss := range saved.State.Sessions {
		s := ss.Session
		is := inspectSession{SEID: s.SEID, SID: ss.SID, TEIDs: s.TEIDs, Rules: []inspectRule{}}
		if s.UEv4.IsValid() {
			is.UEv4 = s.UEv4.String()
		}
		if s.UEv6.IsValid() {
			is.UEv6 = s.UEv6.String()
		}
		if pinned != nil {
			if u, err := pinned.SessionUsage(ss.SID); err == nil {
				for d := range 2 {
					is.Forwarded[d] = counterOut{u.Forwarded[d].Packets, u.Forwarded[d].Bytes}
					is.Dropped[d] = counterOut{u.Dropped[d].Packets, u.Dropped[d].Bytes}
				}
			}
		}
		rules := slices.Clone(s.Rules)
		slices.SortFunc(rules, func(a, b enforcer.Rule) int {
			if a.Direction != b.Direction {
				return int(a.Direction) - int(b.Direction)
			}
			if a.Precedence != b.Precedence {
				return int(a.Precedence) - int(b.Precedence)
			}
			return int(a.ID) - int(b.ID)
		})
		for _, r := range rules {
			ir := inspectRule{ID: r.ID, Direction: r.Direction.String(), Precedence: r.Precedence,
				Addr: "any", Protocol: r.Protocol, Ports: "any", Action: r.Action.String()}
			if r.Addr.IsValid() {
				ir.Addr = r.Addr.String()
			}
			if len(r.Ports) > 0 {
				var ps []string
				for _, p := range r.Ports {
					if p.Lo == p.Hi {
						ps = append(ps, fmt.Sprint(p.Lo))
					} else {
						ps = append(ps, fmt.Sprintf("%d-%d", p.Lo, p.Hi))
					}
				}
				ir.Ports = strings.Join(ps, ",")
			}
			if idx, ok := ss.RuleIDs[r.ID]; ok && pinned != nil {
				if c, err := pinned.RuleUsage(idx); err == nil {
					ir.Usage = counterOut{c.Packets, c.Bytes}
				}
			}
			is.Rules = append(is.Rules, ir)
		}
		rep.Sessions = append(rep.Sessions, is)
	}
	return rep, nil
}

func printReport(w io.Writer, rep *inspectReport) {
	fmt.Fprintf(w, "snapshot saved %s, pin dir %q, live counters %v\n", rep.SavedAt.Format(time.RFC3339), rep.PinDir, rep.Live)
	if rep.Stats != nil {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nDIRECTION\tREASON\tPACKETS\tBYTES")
		for _, d := range []string{"uplink", "downlink"} {
			m := rep.Stats.Packets[d]
			for _, r := range slices.Sorted(mapKeysOf(m)) {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", d, r, m[r].Packets, m[r].Bytes)
			}
		}
		tw.Flush()
		fmt.Fprintf(w, "deny events: sent %d, suppressed %d, lost %d\n",
			rep.Stats.Events.Sent, rep.Stats.Events.Suppressed, rep.Stats.Events.Lost)
	}
	fmt.Fprintf(w, "\n%d sessions\n", len(rep.Sessions))
	for _, s := range rep.Sessions {
		fmt.Fprintf(w, "\nsession SEID %#x (sid %d) TEIDs %v UE %s %s\n", s.SEID, s.SID, hexList(s.TEIDs), s.UEv4, s.UEv6)
		fmt.Fprintf(w, "  forwarded UL %d pkts/%d B, DL %d pkts/%d B; dropped UL %d pkts, DL %d pkts\n",
			s.Forwarded[0].Packets, s.Forwarded[0].Bytes, s.Forwarded[1].Packets, s.Forwarded[1].Bytes,
			s.Dropped[0].Packets, s.Dropped[1].Packets)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  RULE\tDIR\tPREC\tPINE ADDR\tPROTO\tPORTS\tACTION\tPACKETS\tBYTES")
		for _, r := range s.Rules {
			fmt.Fprintf(tw, "  %d\t%s\t%d\t%s\t%d\t%s\t%s\t%d\t%d\n", r.ID, r.Direction, r.Precedence,
				r.Addr, r.Protocol, r.Ports, r.Action, r.Usage.Packets, r.Usage.Bytes)
		}
		tw.Flush()
	}
}

func mapKeysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func hexList(v []uint32) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%#x", x))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// readSaved reads the saved state (node.json and the session files, or a
// legacy datapath snapshot) as one savedState.
func readSaved(stateDir string) (*savedState, error) {
	ld, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	if ld.node == nil {
		return nil, os.ErrNotExist
	}
	s := &savedState{Version: storeVersion, SavedAt: ld.node.SavedAt, PinDir: ld.node.PinDir, MaxRules: ld.node.MaxRules,
		State: ld.datapathState()}
	if ld.legacyAt.After(s.SavedAt) {
		s.SavedAt = ld.legacyAt
	}
	for _, f := range ld.sessions {
		if f.SavedAt.After(s.SavedAt) {
			s.SavedAt = f.SavedAt
		}
	}
	return s, nil
}
