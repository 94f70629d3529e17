package smfsim

import (
	"fmt"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
)

// UsageReport is one Usage Report IE (in a Session Report Request, Session
// Modification Response or Session Deletion Response), decoded.
type UsageReport struct {
	URRID uint32 `json:"urr_id"`
	// Slot is the rule slot of the URR under the ID scheme (0 = default rule,
	// n = PINE n); SlotOK is false if the URR ID is outside the scheme.
	Slot   uint16 `json:"pine"`
	SlotOK bool   `json:"-"`
	URSeqN uint32 `json:"ur_seqn"`
	// Trigger holds the raw Usage Report Trigger octets; Triggers their names
	// (TS 29.244 §8.2.41), e.g. ["VOLTH"] or ["TERMR"].
	Trigger  []byte   `json:"-"`
	Triggers []string `json:"triggers"`

	HasVolume       bool   `json:"-"`
	TotalVolume     uint64 `json:"total_bytes"`
	UplinkVolume    uint64 `json:"ul_bytes"`
	DownlinkVolume  uint64 `json:"dl_bytes"`
	TotalPackets    uint64 `json:"total_packets"`
	UplinkPackets   uint64 `json:"ul_packets"`
	DownlinkPackets uint64 `json:"dl_packets"`

	StartTime time.Time `json:"start,omitzero"`
	EndTime   time.Time `json:"end,omitzero"`
}

func (u UsageReport) String() string {
	who := "?"
	if u.SlotOK {
		who = "default"
		if u.Slot != 0 {
			who = fmt.Sprintf("pine %d", u.Slot)
		}
	}
	return fmt.Sprintf("URR %d (%s) seq %d %v: UL %d B/%d pkt, DL %d B/%d pkt, total %d B",
		u.URRID, who, u.URSeqN, u.Triggers, u.UplinkVolume, u.UplinkPackets,
		u.DownlinkVolume, u.DownlinkPackets, u.TotalVolume)
}

// Report is a Session Report Request the UPF sent, already answered with
// Cause Request accepted.
type Report struct {
	SEID     uint64        `json:"cp_seid"` // the CP SEID in the request header (ours)
	UPSEID   uint64        `json:"up_seid"` // the session's UP SEID, 0 if the session is unknown
	Type     uint8         `json:"report_type"`
	Types    []string      `json:"report_types"` // names of Type's bits: "DLDR", "USAR", "ERIR", "UPIR", ...
	Usage    []UsageReport `json:"usage"`
	Received time.Time     `json:"received"`
}

var usageTriggerNames = [3][8]string{
	{"PERIO", "VOLTH", "TIMTH", "QUHTI", "START", "STOPT", "DROTH", "IMMER"},
	{"VOLQU", "TIMQU", "LIUSA", "TERMR", "MONIT", "ENVCL", "MACAR", "EVETH"},
	{"EVEQU", "TEBUR", "IPMJL", "QUVTI", "EMRRE", "UPINT", "", ""},
}

// UsageTriggerNames names the bits of Usage Report Trigger octets.
func UsageTriggerNames(b []byte) []string {
	var out []string
	for i := 0; i < len(b) && i < len(usageTriggerNames); i++ {
		for bit := 0; bit < 8; bit++ {
			if b[i]&(1<<bit) != 0 {
				n := usageTriggerNames[i][bit]
				if n == "" {
					n = fmt.Sprintf("octet%d.bit%d", i+5, bit+1)
				}
				out = append(out, n)
			}
		}
	}
	return out
}

var reportTypeNames = [8]string{"DLDR", "USAR", "ERIR", "UPIR", "TMIR", "SESR", "UISR", "bit8"}

// ReportTypeNames names the bits of a Report Type value (TS 29.244 §8.2.21).
func ReportTypeNames(t uint8) []string {
	var out []string
	for bit := 0; bit < 8; bit++ {
		if t&(1<<bit) != 0 {
			out = append(out, reportTypeNames[bit])
		}
	}
	return out
}

// parseUsageReports decodes Usage Report IEs of any of the three types.
func parseUsageReports(ies []*ie.IE) ([]UsageReport, error) {
	var out []UsageReport
	for _, r := range ies {
		if r == nil {
			continue
		}
		children, err := r.UsageReport()
		if err != nil {
			return out, fmt.Errorf("usage report: %w", err)
		}
		var u UsageReport
		for _, c := range children {
			switch c.Type {
			case ie.URRID:
				if u.URRID, err = c.URRID(); err != nil {
					return out, fmt.Errorf("usage report URR ID: %w", err)
				}
				u.Slot, u.SlotOK = SlotOfURR(u.URRID)
			case ie.URSEQN:
				u.URSeqN, _ = c.URSEQN()
			case ie.UsageReportTrigger:
				u.Trigger = append([]byte(nil), c.Payload...)
				u.Triggers = UsageTriggerNames(u.Trigger)
			case ie.VolumeMeasurement:
				v, err := c.VolumeMeasurement()
				if err != nil {
					return out, fmt.Errorf("usage report volume measurement: %w", err)
				}
				u.HasVolume = true
				u.TotalVolume, u.UplinkVolume, u.DownlinkVolume = v.TotalVolume, v.UplinkVolume, v.DownlinkVolume
				u.TotalPackets, u.UplinkPackets, u.DownlinkPackets = v.TotalNumberOfPackets, v.UplinkNumberOfPackets, v.DownlinkNumberOfPackets
			case ie.StartTime:
				u.StartTime, _ = c.StartTime()
			case ie.EndTime:
				u.EndTime, _ = c.EndTime()
			}
		}
		out = append(out, u)
	}
	return out, nil
}
