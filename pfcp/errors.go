package pfcp

import (
	"errors"
	"fmt"

	"github.com/wmnsk/go-pfcp/ie"

	"github.com/pine-upf/pine-upf/enforcer"
)

// causeError is a request failure with the Cause, Offending IE and Failed
// Rule ID the response carries (TS 29.244 clause 8.2.1, 8.2.22, 8.2.80).
type causeError struct {
	cause     uint8
	offending uint16 // IE type; 0 = none
	ruleType  uint8  // Failed Rule ID, with hasRule
	ruleID    uint32
	hasRule   bool
	err       error
}

func (e *causeError) Error() string { return e.err.Error() }
func (e *causeError) Unwrap() error { return e.err }

// fail builds a causeError; format may wrap an error with %w.
func fail(cause uint8, offending uint16, format string, args ...any) *causeError {
	return &causeError{cause: cause, offending: offending, err: fmt.Errorf(format, args...)}
}

// rule names the rule that failed (Failed Rule ID, with cause 73).
func (e *causeError) rule(typ uint8, id uint32) *causeError {
	e.ruleType, e.ruleID, e.hasRule = typ, id, true
	return e
}

// asCause turns any error into a causeError: enforcer errors map to their
// Causes, anything unknown is a system failure.
func asCause(err error, offending uint16) *causeError {
	var ce *causeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, enforcer.ErrFull):
		return fail(ie.CauseNoResourcesAvailable, 0, "datapath: %w", err)
	case errors.Is(err, enforcer.ErrBadRule), errors.Is(err, enforcer.ErrConflict):
		ce := fail(ie.CauseRuleCreationModificationFailure, offending, "datapath: %w", err)
		// The enforcer names the refused rule: its PDR is the Failed
		// Rule ID (rule IDs are pdrID<<8 | SDF filter index).
		var re *enforcer.RuleError
		if errors.As(err, &re) {
			ce.rule(ie.RuleIDTypePDR, re.RuleID>>8)
		}
		return ce
	}
	return fail(ie.CauseSystemFailure, 0, "datapath: %w", err)
}

// causeIEs are the Cause, Offending IE and Failed Rule ID IEs of a response.
func (e *causeError) ies() []*ie.IE {
	out := []*ie.IE{ie.NewCause(e.cause)}
	if e.offending != 0 {
		out = append(out, ie.NewOffendingIE(e.offending))
	}
	if e.hasRule && e.cause == ie.CauseRuleCreationModificationFailure {
		out = append(out, ie.NewFailedRuleID(e.ruleType, e.ruleID))
	}
	return out
}

// decode runs a go-pfcp field decoder, turning a panic on malformed input
// into an error: a few decoders index past short payloads.
func decode[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed IE: %v", r)
		}
	}()
	return f()
}
