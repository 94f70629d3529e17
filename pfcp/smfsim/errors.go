package smfsim

import (
	"errors"
	"fmt"

	"github.com/wmnsk/go-pfcp/ie"
)

var (
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("smfsim: client closed")
	// ErrTimeout is wrapped by the error of a request that got no response
	// after all retransmissions.
	ErrTimeout = errors.New("smfsim: no response from UPF")
	// ErrNotAssociated is returned by session calls before Associate.
	ErrNotAssociated = errors.New("smfsim: no PFCP association")
)

// causeNames are the TS 29.244 §8.2.1 Cause values.
var causeNames = map[uint8]string{
	1:  "Request accepted",
	2:  "More Usage Report to send",
	3:  "Request partially accepted",
	64: "Request rejected",
	65: "Session context not found",
	66: "Mandatory IE missing",
	67: "Conditional IE missing",
	68: "Invalid length",
	69: "Mandatory IE incorrect",
	70: "Invalid Forwarding Policy",
	71: "Invalid F-TEID allocation option",
	72: "No established PFCP Association",
	73: "Rule creation/modification Failure",
	74: "PFCP entity in congestion",
	75: "No resources available",
	76: "Service not supported",
	77: "System failure",
	78: "Redirection Requested",
	79: "All dynamic addresses are occupied",
	80: "Unknown Pre-defined Rule",
	81: "Unknown Application ID",
	82: "L2TP tunnel Establishment failure",
	83: "L2TP session Establishment failure",
	84: "L2TP tunnel Release",
	85: "L2TP session Release",
	86: "PFCP session restoration failure due to requested SEID already in use",
	87: "L2TP tunnel establishment failure - tunnel auth failure",
	88: "L2TP session establishment failure - session auth failure",
	89: "L2TP tunnel establishment failure - LNS not reachable",
}

// CauseName returns the TS 29.244 name of a Cause value.
func CauseName(c uint8) string {
	if n, ok := causeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("Cause(%d)", c)
}

// IEName returns the name of a PFCP IE type (go-pfcp's constant name).
func IEName(t uint16) string {
	if n, ok := ieNames[t]; ok {
		return n
	}
	return fmt.Sprintf("IE(%d)", t)
}

var ruleTypeNames = map[uint8]string{
	ie.RuleIDTypePDR: "PDR", ie.RuleIDTypeFAR: "FAR", ie.RuleIDTypeQER: "QER",
	ie.RuleIDTypeURR: "URR", ie.RuleIDTypeBAR: "BAR",
}

// CauseError is returned when the UPF answers a request with a Cause other
// than Request accepted.
type CauseError struct {
	Request     string // message type name of the request, e.g. "Session Modification Request"
	Cause       uint8
	OffendingIE uint16 // 0 if the response carried none
	// FailedRule is set when the response carried a Failed Rule ID IE.
	FailedRuleType string // "PDR", "FAR", "QER", "URR", "BAR"
	FailedRuleID   uint32
}

func (e *CauseError) Error() string {
	s := fmt.Sprintf("%s rejected by UPF: cause %d %q", e.Request, e.Cause, CauseName(e.Cause))
	if e.OffendingIE != 0 {
		s += fmt.Sprintf(", offending IE %d %s", e.OffendingIE, IEName(e.OffendingIE))
	}
	if e.FailedRuleType != "" {
		s += fmt.Sprintf(", failed rule %s %d", e.FailedRuleType, e.FailedRuleID)
	}
	return s
}

// checkCause returns nil when cause says Request accepted, else a *CauseError
// (also when the Cause IE is missing or unreadable).
func checkCause(request string, cause, offending, failedRule *ie.IE) error {
	if cause == nil {
		return fmt.Errorf("%s: response without Cause IE", request)
	}
	c, err := cause.Cause()
	if err != nil {
		return fmt.Errorf("%s: bad Cause IE: %w", request, err)
	}
	if c == ie.CauseRequestAccepted {
		return nil
	}
	e := &CauseError{Request: request, Cause: c}
	if offending != nil {
		if t, err := offending.OffendingIE(); err == nil {
			e.OffendingIE = t
		}
	}
	if failedRule != nil {
		if typ, err := failedRule.RuleIDType(); err == nil {
			if id, err := failedRule.FailedRuleID(); err == nil {
				e.FailedRuleType = ruleTypeNames[typ]
				if e.FailedRuleType == "" {
					e.FailedRuleType = fmt.Sprintf("type%d", typ)
				}
				e.FailedRuleID = id
			}
		}
	}
	return e
}
