package smfsim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// Default precedences (lower value wins).
const (
	DefaultPINEPrecedence    = 1000
	DefaultDefaultPrecedence = 65535
	DefaultChooseID          = 1
	DefaultQFI               = 1
)

// PEGC describes the gateway UE's PDU session.
type PEGC struct {
	// UEIPv4 and/or UEIPv6Prefix: the UE IP Address IE of every PDR (source
	// in uplink PDRs, destination in downlink PDRs). A prefix shorter than /64
	// is sent as IPv6 prefix delegation (IPv6D, bits = 64 - length), a /64 as
	// a plain IPv6 address, a longer one with the IPv6 Prefix Length field.
	UEIPv4       netip.Addr
	UEIPv6Prefix netip.Prefix
	// GNB and GNBTEID: the downlink tunnel (Outer Header Creation GTP-U/UDP/IPv4
	// or /IPv6 by GNB's family). The N3 F-TEID is requested in the same family.
	GNB     netip.Addr
	GNBTEID uint32
	// ChooseID is the CHOOSE ID of the N3 F-TEID request (default 1): every
	// uplink PDR of the establishment carries CH=1 with this ID, so they all
	// get the same UP-allocated TEID.
	ChooseID uint8
	// QFI is sent in every QER (the QFI for downlink PDU Session Containers);
	// default 1.
	QFI uint8
	// NetworkInstance, if set, is sent in every PDI and in the uplink FARs.
	NetworkInstance string
	// Default is the PEGC's own rule (slot 0); nil for none. When there is no
	// default rule and no PINEs, the establishment carries a DROP default rule
	// (Create PDR is mandatory, and the F-TEID must be allocated somehow).
	Default *DefaultRule
	// PINEs are installed in the establishment request already.
	PINEs []PINE
	// ChooseOnModify makes AddPINE request the F-TEID with CH=1 and ChooseID
	// again instead of sending the F-TEID allocated at establishment (what
	// open5gs-like SMFs do). Either way the UPF's Created PDR, if any, must
	// name the session's TEID.
	ChooseOnModify bool
}

// DefaultRule is the session-level rule of slot 0.
type DefaultRule struct {
	Precedence uint32 // 0: DefaultDefaultPrecedence
	// Filter is the SDF filter flow description, e.g. "permit out ip from any
	// to assigned"; "" sends no SDF filter (every packet of the session).
	Filter          string
	Drop            bool // FAR DROP instead of FORW
	MBRUL, MBRDL    uint64
	GateClosed      bool
	VolumeThreshold uint64
}

// PINE is one PIN Element's rule set.
type PINE struct {
	ID uint16 // 1..MaxPINEID; selects the rule IDs (see MaxPINEID)
	// Addr is the PINE's address: the UE address for a NAT'd PEGC (with
	// Ports) or the PINE's own IPv6 address inside the delegated prefix.
	Addr  netip.Addr
	Proto uint8       // 0 = ip (any)
	Ports []PortRange // empty = any port; one SDF Filter IE per range
	// Precedence 0 means DefaultPINEPrecedence.
	Precedence      uint32
	MBRUL, MBRDL    uint64 // bit/s, 0 = none (sent in kbit/s, rounded up)
	GateClosed      bool
	VolumeThreshold uint64 // bytes, 0 = none
}

// CreatedPDR is a Created PDR IE of a response.
type CreatedPDR struct {
	PDRID uint16     `json:"pdr_id"`
	TEID  uint32     `json:"teid"`
	Addr  netip.Addr `json:"addr"`
}

// Session is an established PFCP session of a PEGC.
type Session struct {
	c      *Client
	CPSEID uint64     // ours
	UPSEID uint64     // the UPF's, from the UP F-SEID
	UPAddr netip.Addr // the UPF's F-SEID address
	TEID   uint32     // the N3 TEID the UPF allocated
	N3Addr netip.Addr // the N3 address the UPF allocated
	PEGC   PEGC
	// Created are the Created PDR IEs of the establishment response.
	Created []CreatedPDR

	mu      sync.Mutex
	pines   map[uint16]PINE
	deleted bool
}

type ruleSpec struct {
	precedence   uint32
	filters      []string
	drop         bool
	mbrUL, mbrDL uint64
	gateClosed   bool
	volThreshold uint64
}

func (p PINE) spec() ruleSpec {
	r := ruleSpec{precedence: p.Precedence, filters: pineFlowDescriptions(p), mbrUL: p.MBRUL, mbrDL: p.MBRDL,
		gateClosed: p.GateClosed, volThreshold: p.VolumeThreshold}
	if r.precedence == 0 {
		r.precedence = DefaultPINEPrecedence
	}
	return r
}

func (d DefaultRule) spec() ruleSpec {
	r := ruleSpec{precedence: d.Precedence, drop: d.Drop, mbrUL: d.MBRUL, mbrDL: d.MBRDL,
		gateClosed: d.GateClosed, volThreshold: d.VolumeThreshold}
	if d.Filter != "" {
		r.filters = []string{d.Filter}
	}
	if r.precedence == 0 {
		r.precedence = DefaultDefaultPrecedence
	}
	return r
}

func (p *PEGC) validate() error {
	if !p.UEIPv4.IsValid() && !p.UEIPv6Prefix.IsValid() {
		return errors.New("PEGC: UE IPv4 address or IPv6 prefix required")
	}
	if p.UEIPv4.IsValid() && !p.UEIPv4.Unmap().Is4() {
		return fmt.Errorf("PEGC: UE IPv4 address %s is not IPv4", p.UEIPv4)
	}
	if p.UEIPv6Prefix.IsValid() && !p.UEIPv6Prefix.Addr().Is6() {
		return fmt.Errorf("PEGC: UE IPv6 prefix %s is not IPv6", p.UEIPv6Prefix)
	}
	if !p.GNB.IsValid() {
		return errors.New("PEGC: gNB address required")
	}
	seen := map[uint16]bool{}
	for _, pn := range p.PINEs {
		if err := pn.validate(); err != nil {
			return err
		}
		if seen[pn.ID] {
			return fmt.Errorf("PINE %d given twice", pn.ID)
		}
		seen[pn.ID] = true
	}
	return nil
}

func (p PINE) validate() error {
	if p.ID == 0 || p.ID > MaxPINEID {
		return fmt.Errorf("PINE ID %d outside 1..%d", p.ID, MaxPINEID)
	}
	if !p.Addr.IsValid() {
		return fmt.Errorf("PINE %d: address required", p.ID)
	}
	for _, r := range p.Ports {
		if r.Hi < r.Lo {
			return fmt.Errorf("PINE %d: port range %d-%d reversed", p.ID, r.Lo, r.Hi)
		}
	}
	return nil
}

func (p *PEGC) gnb() netip.Addr { return p.GNB.Unmap() }

// ueIPIE builds the UE IP Address IE; dst sets S/D (destination, for
// downlink PDRs).
func (p *PEGC) ueIPIE(dst bool) *ie.IE {
	var flags, v6d, v6pl uint8
	var v4, v6 string
	if p.UEIPv4.IsValid() {
		flags |= 0x02 // V4
		v4 = p.UEIPv4.Unmap().String()
	}
	if p.UEIPv6Prefix.IsValid() {
		flags |= 0x01 // V6
		pfx := p.UEIPv6Prefix.Masked()
		v6 = pfx.Addr().String()
		switch l := pfx.Bits(); {
		case l < 64:
			flags |= 0x08 // IPv6D
			v6d = uint8(64 - l)
		case l > 64:
			flags |= 0x40 // IP6PL
			v6pl = uint8(l)
		}
	}
	if dst {
		flags |= 0x04 // S/D
	}
	return ie.NewUEIPAddress(flags, v4, v6, v6d, v6pl)
}

func (p *PEGC) pdnType() uint8 {
	switch {
	case p.UEIPv4.IsValid() && p.UEIPv6Prefix.IsValid():
		return ie.PDNTypeIPv4v6
	case p.UEIPv6Prefix.IsValid():
		return ie.PDNTypeIPv6
	default:
		return ie.PDNTypeIPv4
	}
}

// chooseFTEID is the N3 F-TEID request: CH=1, CHID=1, V4 or V6 by the gNB's
// family.
func (p *PEGC) chooseFTEID() *ie.IE {
	flags := uint8(0x04 | 0x08) // CH, CHID
	if p.gnb().Is4() {
		flags |= 0x01
	} else {
		flags |= 0x02
	}
	return ie.NewFTEID(flags, 0, nil, nil, p.ChooseID)
}

// outerHeaderRemoval: GTP-U/UDP/IPv4 (0) or GTP-U/UDP/IPv6 (1).
func (p *PEGC) outerHeaderRemoval() *ie.IE {
	if p.gnb().Is4() {
		return ie.NewOuterHeaderRemoval(0, 0)
	}
	return ie.NewOuterHeaderRemoval(1, 0)
}

func (p *PEGC) outerHeaderCreation() *ie.IE {
	if p.gnb().Is4() {
		return ie.NewOuterHeaderCreation(0x0100, p.GNBTEID, p.gnb().String(), "", 0, 0, 0)
	}
	return ie.NewOuterHeaderCreation(0x0200, p.GNBTEID, "", p.gnb().String(), 0, 0, 0)
}

type slotIEs struct {
	pdrs, fars, qers, urrs []*ie.IE
}

func (s *slotIEs) all() []*ie.IE {
	out := slices.Concat(s.pdrs, s.fars, s.urrs, s.qers)
	return out
}

// buildSlot builds the Create PDR/FAR/QER/URR IEs of slot n, with fteid as
// the uplink PDR's Local F-TEID.
func (p *PEGC) buildSlot(n uint16, r ruleSpec, fteid *ie.IE) slotIEs {
	ulPDR, dlPDR := PDRIDs(n)
	ulFAR, dlFAR := FARIDs(n)
	qer, urr := QERID(n), URRID(n)

	pdi := func(src uint8, dst bool, withTEID bool) *ie.IE {
		ies := []*ie.IE{ie.NewSourceInterface(src)}
		if withTEID {
			ies = append(ies, fteid)
		}
		if p.NetworkInstance != "" {
			ies = append(ies, ie.NewNetworkInstance(p.NetworkInstance))
		}
		ies = append(ies, p.ueIPIE(dst))
		for _, f := range r.filters {
			ies = append(ies, ie.NewSDFFilter(f, "", "", "", 0))
		}
		return ie.NewPDI(ies...)
	}
	var out slotIEs
	out.pdrs = []*ie.IE{
		ie.NewCreatePDR(
			ie.NewPDRID(ulPDR),
			ie.NewPrecedence(r.precedence),
			pdi(ie.SrcInterfaceAccess, false, true),
			p.outerHeaderRemoval(),
			ie.NewFARID(ulFAR),
			ie.NewURRID(urr),
			ie.NewQERID(qer),
		),
		ie.NewCreatePDR(
			ie.NewPDRID(dlPDR),
			ie.NewPrecedence(r.precedence),
			pdi(ie.SrcInterfaceCore, true, false),
			ie.NewFARID(dlFAR),
			ie.NewURRID(urr),
			ie.NewQERID(qer),
		),
	}
	if r.drop {
		out.fars = []*ie.IE{
			ie.NewCreateFAR(ie.NewFARID(ulFAR), ie.NewApplyAction(0x01, 0x00)),
			ie.NewCreateFAR(ie.NewFARID(dlFAR), ie.NewApplyAction(0x01, 0x00)),
		}
	} else {
		ulFwd := []*ie.IE{ie.NewDestinationInterface(ie.DstInterfaceCore)}
		if p.NetworkInstance != "" {
			ulFwd = append(ulFwd, ie.NewNetworkInstance(p.NetworkInstance))
		}
		out.fars = []*ie.IE{
			ie.NewCreateFAR(ie.NewFARID(ulFAR), ie.NewApplyAction(0x02, 0x00),
				ie.NewForwardingParameters(ulFwd...)),
			ie.NewCreateFAR(ie.NewFARID(dlFAR), ie.NewApplyAction(0x02, 0x00),
				ie.NewForwardingParameters(
					ie.NewDestinationInterface(ie.DstInterfaceAccess),
					p.outerHeaderCreation(),
				)),
		}
	}
	out.qers = []*ie.IE{ie.NewCreateQER(p.qerBody(qer, r)...)}
	out.urrs = []*ie.IE{ie.NewCreateURR(urrBody(urr, r)...)}
	return out
}

func (p *PEGC) qerBody(id uint32, r ruleSpec) []*ie.IE {
	gate := ie.GateStatusOpen
	if r.gateClosed {
		gate = ie.GateStatusClosed
	}
	ies := []*ie.IE{ie.NewQERID(id), ie.NewGateStatus(gate, gate)}
	if r.mbrUL != 0 || r.mbrDL != 0 {
		ies = append(ies, ie.NewMBR(bpsToKbps(r.mbrUL), bpsToKbps(r.mbrDL)))
	}
	if p.QFI != 0 {
		ies = append(ies, ie.NewQFI(p.QFI))
	}
	return ies
}

func urrBody(id uint32, r ruleSpec) []*ie.IE {
	trig := uint8(0)
	if r.volThreshold != 0 {
		trig = 0x02 // VOLTH
	}
	ies := []*ie.IE{
		ie.NewURRID(id),
		ie.NewMeasurementMethod(0, 1, 0), // VOLUM
		ie.NewReportingTriggers(trig, 0x00, 0x00),
	}
	if r.volThreshold != 0 {
		ies = append(ies, ie.NewVolumeThreshold(0x01, r.volThreshold, 0, 0)) // TOVOL
	}
	return ies
}

func parseCreatedPDRs(ies []*ie.IE) ([]CreatedPDR, error) {
	var out []CreatedPDR
	for _, x := range ies {
		if x == nil {
			continue
		}
		children, err := x.CreatedPDR()
		if err != nil {
			return nil, fmt.Errorf("Created PDR: %w", err)
		}
		var c CreatedPDR
		for _, ch := range children {
			switch ch.Type {
			case ie.PDRID:
				if c.PDRID, err = ch.PDRID(); err != nil {
					return nil, fmt.Errorf("Created PDR: PDR ID: %w", err)
				}
			case ie.FTEID:
				f, err := ch.FTEID()
				if err != nil {
					return nil, fmt.Errorf("Created PDR: F-TEID: %w", err)
				}
				c.TEID = f.TEID
				if f.HasIPv4() {
					c.Addr, _ = netip.AddrFromSlice(f.IPv4Address.To4())
				} else if f.HasIPv6() {
					c.Addr, _ = netip.AddrFromSlice(f.IPv6Address.To16())
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (c *Client) allocSEID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		c.nextSEID++
		if _, used := c.sessions[c.nextSEID]; !used && c.nextSEID != 0 {
			return c.nextSEID
		}
	}
}

func (c *Client) isAssociated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.associated
}

// EstablishPEGC sends a Session Establishment Request for the PEGC's session
// (Node ID, CP F-SEID, the default rule, the initial PINEs, PDN Type) and
// returns the session with the UP F-SEID and the allocated N3 F-TEID.
func (c *Client) EstablishPEGC(ctx context.Context, p PEGC) (*Session, error) {
	const op = "Session Establishment Request"
	if !c.isAssociated() {
		return nil, ErrNotAssociated
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if p.ChooseID == 0 {
		p.ChooseID = DefaultChooseID
	}
	if p.QFI == 0 {
		p.QFI = DefaultQFI
	}
	def := p.Default
	if def == nil && len(p.PINEs) == 0 {
		def = &DefaultRule{Drop: true}
	}
	var groups []slotIEs
	if def != nil {
		groups = append(groups, p.buildSlot(0, def.spec(), p.chooseFTEID()))
	}
	for _, pn := range p.PINEs {
		groups = append(groups, p.buildSlot(pn.ID, pn.spec(), p.chooseFTEID()))
	}
	seid := c.allocSEID()
	ies := []*ie.IE{c.nodeIDIE(), c.fseidIE(seid)}
	for _, g := range groups {
		ies = append(ies, g.pdrs...)
	}
	for _, g := range groups {
		ies = append(ies, g.fars...)
	}
	for _, g := range groups {
		ies = append(ies, g.urrs...)
	}
	for _, g := range groups {
		ies = append(ies, g.qers...)
	}
	ies = append(ies, ie.NewPDNType(p.pdnType()))

	s := &Session{c: c, CPSEID: seid, PEGC: p, pines: map[uint16]PINE{}}
	c.mu.Lock()
	c.sessions[seid] = s // before sending: a report may follow the response at once
	c.mu.Unlock()
	fail := func(err error) (*Session, error) {
		c.mu.Lock()
		delete(c.sessions, seid)
		c.mu.Unlock()
		return nil, err
	}

	r, err := c.Send(ctx, message.NewSessionEstablishmentRequest(0, 0, 0, 0, 0, ies...))
	if err != nil {
		return fail(err)
	}
	resp, ok := r.(*message.SessionEstablishmentResponse)
	if !ok {
		return fail(unexpected(op, r))
	}
	if err := checkCause(op, resp.Cause, resp.OffendingIE, resp.FailedRuleID); err != nil {
		return fail(err)
	}
	if resp.UPFSEID == nil {
		return fail(fmt.Errorf("%s: response without UP F-SEID", op))
	}
	f, err := resp.UPFSEID.FSEID()
	if err != nil {
		return fail(fmt.Errorf("%s: UP F-SEID: %w", op, err))
	}
	c.mu.Lock()
	s.UPSEID = f.SEID
	c.mu.Unlock()
	if f.IPv4Address != nil {
		s.UPAddr, _ = netip.AddrFromSlice(f.IPv4Address.To4())
	} else if f.IPv6Address != nil {
		s.UPAddr, _ = netip.AddrFromSlice(f.IPv6Address.To16())
	}
	if s.Created, err = parseCreatedPDRs(resp.CreatedPDR); err != nil {
		return fail(fmt.Errorf("%s: %w", op, err))
	}
	// Every uplink PDR asked for an F-TEID with the same CHOOSE ID: they must
	// all have got the same one.
	var ul []uint16
	if def != nil {
		u, _ := PDRIDs(0)
		ul = append(ul, u)
	}
	for _, pn := range p.PINEs {
		u, _ := PDRIDs(pn.ID)
		ul = append(ul, u)
	}
	for i, id := range ul {
		idx := slices.IndexFunc(s.Created, func(cp CreatedPDR) bool { return cp.PDRID == id })
		if idx < 0 {
			return fail(fmt.Errorf("%s: no Created PDR with the F-TEID of uplink PDR %d", op, id))
		}
		cp := s.Created[idx]
		if i == 0 {
			s.TEID, s.N3Addr = cp.TEID, cp.Addr
		} else if cp.TEID != s.TEID || cp.Addr != s.N3Addr {
			return fail(fmt.Errorf("%s: uplink PDRs with CHOOSE ID %d got different F-TEIDs: %#x@%s and %#x@%s",
				op, p.ChooseID, s.TEID, s.N3Addr, cp.TEID, cp.Addr))
		}
	}
	if !s.N3Addr.IsValid() {
		return fail(fmt.Errorf("%s: allocated F-TEID %#x has no address", op, s.TEID))
	}
	for _, pn := range p.PINEs {
		s.pines[pn.ID] = pn
	}
	c.log.Info("pfcp session established", "cp_seid", s.CPSEID, "up_seid", s.UPSEID, "teid", s.TEID, "n3", s.N3Addr)
	return s, nil
}

// sessionFTEID is the allocated F-TEID, for PDRs added later.
func (s *Session) sessionFTEID() *ie.IE {
	if s.PEGC.ChooseOnModify {
		return s.PEGC.chooseFTEID()
	}
	if s.N3Addr.Is4() {
		return ie.NewFTEID(0x01, s.TEID, s.N3Addr.AsSlice(), nil, 0)
	}
	return ie.NewFTEID(0x02, s.TEID, nil, s.N3Addr.AsSlice(), 0)
}

// PINEs returns the PINEs installed, by ID.
func (s *Session) PINEs() []PINE {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PINE, 0, len(s.pines))
	for _, p := range s.pines {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PINE) int { return int(a.ID) - int(b.ID) })
	return out
}

func (s *Session) modify(ctx context.Context, op string, ies ...*ie.IE) (*message.SessionModificationResponse, error) {
	s.mu.Lock()
	deleted := s.deleted
	s.mu.Unlock()
	if deleted {
		return nil, fmt.Errorf("%s: session %d already deleted", op, s.CPSEID)
	}
	r, err := s.c.Send(ctx, message.NewSessionModificationRequest(0, 0, s.UPSEID, 0, 0, ies...))
	if err != nil {
		return nil, err
	}
	resp, ok := r.(*message.SessionModificationResponse)
	if !ok {
		return nil, unexpected(op, r)
	}
	if err := checkCause(op, resp.Cause, resp.OffendingIE, resp.FailedRuleID); err != nil {
		return nil, err
	}
	return resp, nil
}

// AddPINE installs a PINE's rules with a Session Modification Request:
// Create PDR uplink (ACCESS, the session's F-TEID) and downlink (CORE), both
// with the PINE's SDF filters, Create FAR uplink (FORW to CORE) and downlink
// (FORW to ACCESS, Outer Header Creation to the gNB), Create QER, Create URR.
func (s *Session) AddPINE(ctx context.Context, p PINE) error {
	const op = "Session Modification Request (add PINE)"
	if err := p.validate(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.mu.Lock()
	_, dup := s.pines[p.ID]
	s.mu.Unlock()
	if dup {
		return fmt.Errorf("%s: PINE %d already installed", op, p.ID)
	}
	g := s.PEGC.buildSlot(p.ID, p.spec(), s.sessionFTEID())
	resp, err := s.modify(ctx, op, g.all()...)
	if err != nil {
		return err
	}
	created, err := parseCreatedPDRs(resp.CreatedPDR)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ul, _ := PDRIDs(p.ID)
	for _, cp := range created {
		if cp.PDRID == ul && cp.TEID != s.TEID {
			return fmt.Errorf("%s: UPF allocated TEID %#x for PINE %d, the session's is %#x", op, cp.TEID, p.ID, s.TEID)
		}
	}
	if s.PEGC.ChooseOnModify && !slices.ContainsFunc(created, func(cp CreatedPDR) bool { return cp.PDRID == ul }) {
		return fmt.Errorf("%s: no Created PDR for uplink PDR %d requested with CHOOSE", op, ul)
	}
	s.mu.Lock()
	s.pines[p.ID] = p
	s.mu.Unlock()
	s.c.log.Info("pfcp PINE added", "up_seid", s.UPSEID, "pine", p.ID, "filters", pineFlowDescriptions(p))
	return nil
}

// RemovePINE removes a PINE's PDRs, FARs, QER and URR, and returns the usage
// reports of the removed URR the UPF sent in the response.
func (s *Session) RemovePINE(ctx context.Context, id uint16) ([]UsageReport, error) {
	const op = "Session Modification Request (remove PINE)"
	if id == 0 || id > MaxPINEID {
		return nil, fmt.Errorf("%s: PINE ID %d outside 1..%d", op, id, MaxPINEID)
	}
	ulPDR, dlPDR := PDRIDs(id)
	ulFAR, dlFAR := FARIDs(id)
	resp, err := s.modify(ctx, op,
		ie.NewRemovePDR(ie.NewPDRID(ulPDR)),
		ie.NewRemovePDR(ie.NewPDRID(dlPDR)),
		ie.NewRemoveFAR(ie.NewFARID(ulFAR)),
		ie.NewRemoveFAR(ie.NewFARID(dlFAR)),
		ie.NewRemoveURR(ie.NewURRID(URRID(id))),
		ie.NewRemoveQER(ie.NewQERID(QERID(id))),
	)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.pines, id)
	s.mu.Unlock()
	usage, err := parseUsageReports(resp.UsageReport)
	if err != nil {
		return usage, fmt.Errorf("%s: %w", op, err)
	}
	s.c.log.Info("pfcp PINE removed", "up_seid", s.UPSEID, "pine", id, "usage_reports", len(usage))
	return usage, nil
}

// UpdatePINE changes an installed PINE's gate, MBR (Update QER) and volume
// threshold (Update URR, only if it changed). Address, protocol, ports and
// precedence are not changed (remove and add the PINE for that). An MBR
// cannot be removed by Update QER: setting both rates to 0 leaves the
// previous MBR in place.
func (s *Session) UpdatePINE(ctx context.Context, p PINE) error {
	const op = "Session Modification Request (update PINE)"
	s.mu.Lock()
	old, ok := s.pines[p.ID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: PINE %d not installed", op, p.ID)
	}
	r := p.spec()
	ies := []*ie.IE{ie.NewUpdateQER(s.PEGC.qerBody(QERID(p.ID), r)...)}
	if p.VolumeThreshold != old.VolumeThreshold {
		ies = append(ies, ie.NewUpdateURR(urrBody(URRID(p.ID), r)...))
	}
	if _, err := s.modify(ctx, op, ies...); err != nil {
		return err
	}
	old.GateClosed = p.GateClosed
	if p.MBRUL != 0 || p.MBRDL != 0 {
		old.MBRUL, old.MBRDL = p.MBRUL, p.MBRDL
	}
	old.VolumeThreshold = p.VolumeThreshold
	s.mu.Lock()
	s.pines[p.ID] = old
	s.mu.Unlock()
	return nil
}

// Delete sends a Session Deletion Request and returns the usage reports of
// the response.
func (s *Session) Delete(ctx context.Context) ([]UsageReport, error) {
	const op = "Session Deletion Request"
	s.mu.Lock()
	deleted := s.deleted
	s.mu.Unlock()
	if deleted {
		return nil, fmt.Errorf("%s: session %d already deleted", op, s.CPSEID)
	}
	r, err := s.c.Send(ctx, message.NewSessionDeletionRequest(0, 0, s.UPSEID, 0, 0))
	if err != nil {
		return nil, err
	}
	resp, ok := r.(*message.SessionDeletionResponse)
	if !ok {
		return nil, unexpected(op, r)
	}
	if err := checkCause(op, resp.Cause, resp.OffendingIE, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.deleted = true
	s.mu.Unlock()
	s.c.mu.Lock()
	delete(s.c.sessions, s.CPSEID)
	s.c.mu.Unlock()
	usage, err := parseUsageReports(resp.UsageReport)
	if err != nil {
		return usage, fmt.Errorf("%s: %w", op, err)
	}
	s.c.log.Info("pfcp session deleted", "up_seid", s.UPSEID, "usage_reports", len(usage))
	return usage, nil
}

// ResumeSession returns a Session for one established by another process
// (same Node ID, so the same association on the UPF): no message is sent.
// teid and n3 are the allocated F-TEID (needed by AddPINE), p describes the
// PEGC as at establishment; the installed PINEs are not known.
func (c *Client) ResumeSession(cpSEID, upSEID uint64, teid uint32, n3 netip.Addr, p PEGC) *Session {
	if p.ChooseID == 0 {
		p.ChooseID = DefaultChooseID
	}
	if p.QFI == 0 {
		p.QFI = DefaultQFI
	}
	s := &Session{c: c, CPSEID: cpSEID, UPSEID: upSEID, TEID: teid, N3Addr: n3.Unmap(), PEGC: p, pines: map[uint16]PINE{}}
	c.mu.Lock()
	c.sessions[cpSEID] = s
	c.mu.Unlock()
	return s
}
