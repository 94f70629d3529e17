package pfcp

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/wmnsk/go-pfcp/ie"

	"github.com/pine-upf/pine-upf/pfcp/flowdesc"
)

// Interface values (TS 29.244 8.2.2, 8.2.24).
const (
	ifaceAccess = 0
	ifaceCore   = 1
	ifaceSGiLAN = 2
	ifaceCP     = 3
)

// Outer Header Creation descriptions this UPF builds (octet 5, bits 1-2).
const (
	ohcGTPUv4 = 0x0100
	ohcGTPUv6 = 0x0200
)

// Outer Header Removal descriptions accepted on uplink PDRs.
var ohrAccepted = []int{0, 1, 6} // GTP-U/UDP/IPv4, GTP-U/UDP/IPv6, GTP-U/UDP/IP

// build applies a request's rule IEs to a session clone.
type build struct {
	srv     *Server
	ss      *session
	teids   map[uint32]bool // TEIDs allocated in this request
	chosen  []uint16        // PDRs created with a UPF-chosen F-TEID (Created PDR)
	updated []uint16        // PDRs updated with a UPF-chosen F-TEID (Updated PDR)
	reports []usageReport   // of URRs removed or queried
}

func missing(t uint16, in string) *causeError {
	return fail(ie.CauseMandatoryIEMissing, t, "%s: mandatory IE %d missing", in, t)
}

func incorrect(t uint16, in string, err error) *causeError {
	return fail(ie.CauseMandatoryIEIncorrect, t, "%s: IE %d incorrect: %w", in, t, err)
}

// ruleID finds and decodes the mandatory rule ID IE (of type t, decoded
// by get) among a grouped IE's children.
func ruleID[T any](kids []*ie.IE, t uint16, in string, get func(*ie.IE) func() (T, error)) (T, *causeError) {
	var zero T
	x := find(kids, t)
	if x == nil {
		return zero, missing(t, in)
	}
	id, err := decode(get(x))
	if err != nil {
		return zero, incorrect(t, in, err)
	}
	return id, nil
}

func find(ies []*ie.IE, t uint16) *ie.IE {
	for _, x := range ies {
		if x.Type == t {
			return x
		}
	}
	return nil
}

func addrFromIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// ---- PDR ----

func (b *build) createPDR(x *ie.IE) *causeError {
	const in = "Create PDR"
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.PDRID, in, func(x *ie.IE) func() (uint16, error) { return x.PDRID })
	if ce != nil {
		return ce
	}
	if _, dup := b.ss.pdrs[id]; dup {
		return fail(ie.CauseRuleCreationModificationFailure, ie.CreatePDR, "PDR %d already exists", id).rule(ie.RuleIDTypePDR, uint32(id))
	}
	p := pdrState{op: ie.CreatePDR, id: id, ohr: -1}
	if p.precedence, ce = ruleID(kids, ie.Precedence, in, func(x *ie.IE) func() (uint32, error) { return x.Precedence }); ce != nil {
		return ce
	}
	pdi := find(kids, ie.PDI)
	if pdi == nil {
		return missing(ie.PDI, in)
	}
	if ce := b.applyPDRFields(&p, kids, ie.CreatePDR); ce != nil {
		return ce
	}
	if ce := b.applyPDI(&p, pdi, ie.CreatePDR); ce != nil {
		return ce
	}
	if !p.hasFAR {
		// Conditional: needed unless predefined rules are activated, which
		// this UPF does not support.
		return fail(ie.CauseConditionalIEMissing, ie.FARID, "PDR %d: no FAR ID", id).rule(ie.RuleIDTypePDR, uint32(id))
	}
	b.ss.pdrs[id] = p
	if p.fteid.chosen {
		b.chosen = append(b.chosen, id)
	}
	return nil
}

func (b *build) updatePDR(x *ie.IE) *causeError {
	const in = "Update PDR"
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.PDRID, in, func(x *ie.IE) func() (uint16, error) { return x.PDRID })
	if ce != nil {
		return ce
	}
	p, ok := b.ss.pdrs[id]
	if !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.UpdatePDR, "PDR %d does not exist", id).rule(ie.RuleIDTypePDR, uint32(id))
	}
	p.op = ie.UpdatePDR
	if precIE := find(kids, ie.Precedence); precIE != nil {
		var err error
		if p.precedence, err = decode(precIE.Precedence); err != nil {
			return fail(ie.CauseRuleCreationModificationFailure, ie.UpdatePDR, "PDR %d: precedence: %w", id, err).rule(ie.RuleIDTypePDR, uint32(id))
		}
	}
	if ce := b.applyPDRFields(&p, kids, ie.UpdatePDR); ce != nil {
		return ce
	}
	if pdi := find(kids, ie.PDI); pdi != nil {
		// A PDI in Update PDR replaces the whole PDI.
		old := p.fteid
		p.fteid, p.ueV4, p.ueV6, p.network, p.qfis, p.filters = fteidState{}, netip.Addr{}, netip.Prefix{}, "", nil, nil
		if ce := b.applyPDI(&p, pdi, ie.UpdatePDR); ce != nil {
			return ce
		}
		if p.fteid.chosen && p.fteid != old {
			b.updated = append(b.updated, id)
		}
	}
	b.ss.pdrs[id] = p
	return nil
}

func (b *build) removePDR(x *ie.IE) *causeError {
	idIE := find(x.ChildIEs, ie.PDRID)
	if idIE == nil {
		return missing(ie.PDRID, "Remove PDR")
	}
	id, err := decode(idIE.PDRID)
	if err != nil {
		return incorrect(ie.PDRID, "Remove PDR", err)
	}
	if _, ok := b.ss.pdrs[id]; !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.RemovePDR, "PDR %d does not exist", id).rule(ie.RuleIDTypePDR, uint32(id))
	}
	delete(b.ss.pdrs, id)
	return nil
}

// applyPDRFields applies the PDR's IEs outside the PDI: Outer Header
// Removal, FAR ID, URR IDs, QER IDs (lists replace the previous lists).
func (b *build) applyPDRFields(p *pdrState, kids []*ie.IE, op uint16) *causeError {
	bad := func(format string, args ...any) *causeError {
		return fail(ie.CauseRuleCreationModificationFailure, op, "PDR %d: "+format, append([]any{p.id}, args...)...).rule(ie.RuleIDTypePDR, uint32(p.id))
	}
	var urrs, qers []uint32
	var sawURR, sawQER bool
	for _, k := range kids {
		switch k.Type {
		case ie.OuterHeaderRemoval:
			d, err := decode(k.OuterHeaderRemovalDescription)
			if err != nil {
				return bad("outer header removal: %w", err)
			}
			p.ohr = int(d)
		case ie.FARID:
			v, err := decode(k.FARID)
			if err != nil {
				return bad("FAR ID: %w", err)
			}
			p.farID, p.hasFAR = v, true
		case ie.URRID:
			v, err := decode(k.URRID)
			if err != nil {
				return bad("URR ID: %w", err)
			}
			sawURR = true
			if !slices.Contains(urrs, v) {
				urrs = append(urrs, v)
			}
		case ie.QERID:
			v, err := decode(k.QERID)
			if err != nil {
				return bad("QER ID: %w", err)
			}
			sawQER = true
			if !slices.Contains(qers, v) {
				qers = append(qers, v)
			}
		case ie.ActivatePredefinedRules, ie.DeactivatePredefinedRules:
			return bad("predefined rules are not supported")
		}
	}
	if sawURR || op == ie.CreatePDR {
		p.urrIDs = urrs
	}
	if sawQER || op == ie.CreatePDR {
		p.qerIDs = qers
	}
	return nil
}

func (b *build) applyPDI(p *pdrState, pdi *ie.IE, op uint16) *causeError {
	bad := func(format string, args ...any) *causeError {
		return fail(ie.CauseRuleCreationModificationFailure, op, "PDR %d: "+format, append([]any{p.id}, args...)...).rule(ie.RuleIDTypePDR, uint32(p.id))
	}
	kids := pdi.ChildIEs
	src := find(kids, ie.SourceInterface)
	if src == nil {
		return missing(ie.SourceInterface, "PDI")
	}
	v, err := decode(src.SourceInterface)
	if err != nil {
		return incorrect(ie.SourceInterface, "PDI", err)
	}
	switch v {
	case ifaceAccess, ifaceCore, ifaceSGiLAN:
		p.source = v
	case ifaceCP:
		return bad("source interface CP-function is not supported")
	default:
		return bad("source interface %d is not supported", v)
	}
	var ue4 netip.Addr
	var ue6 netip.Prefix
	for _, k := range kids {
		switch k.Type {
		case ie.FTEID:
			if p.fteid.set {
				return bad("more than one local F-TEID")
			}
			if ce := b.localFTEID(p, k, op); ce != nil {
				return ce
			}
		case ie.UEIPAddress:
			f, err := decode(func() (*ie.UEIPAddressFields, error) { return ie.ParseUEIPAddressFields(k.Payload) })
			if err != nil {
				return bad("UE IP address: %w", err)
			}
			const v6, v4, ipv6d, chv4, chv6, ip6pl = 0x01, 0x02, 0x08, 0x10, 0x20, 0x40
			if f.Flags&(chv4|chv6) != 0 {
				return bad("UE IP address allocation by the UPF is not supported")
			}
			if f.Flags&v4 != 0 {
				a := addrFromIP(f.IPv4Address)
				if !a.Is4() || (ue4.IsValid() && ue4 != a) {
					return bad("UE IPv4 address %v invalid or given twice", f.IPv4Address)
				}
				ue4 = a
			}
			if f.Flags&v6 != 0 {
				a := addrFromIP(f.IPv6Address)
				if !a.Is6() || a.Is4In6() {
					return bad("UE IPv6 address %v invalid", f.IPv6Address)
				}
				bits := 128 // a plain IPv6 address is that address, not a /64 (see package doc)
				switch {
				case f.Flags&ipv6d != 0:
					if f.IPv6PrefixDelegationBits > 64 {
						return bad("IPv6 prefix delegation bits %d above 64", f.IPv6PrefixDelegationBits)
					}
					bits = 64 - int(f.IPv6PrefixDelegationBits)
				case f.Flags&ip6pl != 0:
					if f.IPv6PrefixLength == 0 || f.IPv6PrefixLength > 128 {
						return bad("IPv6 prefix length %d", f.IPv6PrefixLength)
					}
					bits = int(f.IPv6PrefixLength)
				}
				pr := netip.PrefixFrom(a, bits).Masked()
				if ue6.IsValid() && ue6 != pr {
					return bad("UE IPv6 prefix given twice (%s, %s)", ue6, pr)
				}
				ue6 = pr
			}
		case ie.NetworkInstance:
			p.network, _ = decode(k.NetworkInstance)
		case ie.QFI:
			q, err := decode(k.QFI)
			if err != nil {
				return bad("QFI: %w", err)
			}
			p.qfis = append(slices.Clone(p.qfis), q)
		case ie.SDFFilter:
			if len(p.filters) >= 256 {
				return bad("more than 256 SDF filters")
			}
			f, err := decode(func() (*ie.SDFFilterFields, error) { return ie.ParseSDFFilterFields(k.Payload) })
			if err != nil {
				return bad("SDF filter: %w", err)
			}
			if !f.HasFD() || f.HasTTC() || f.HasSPI() || f.HasFL() {
				return bad("SDF filter without a flow description, or with ToS/SPI/flow label: not enforceable")
			}
			fd, err := flowdesc.Parse(f.FlowDescription)
			if err != nil {
				return bad("SDF filter: %w", err)
			}
			p.filters = append(slices.Clone(p.filters), sdfState{desc: f.FlowDescription, filter: fd, id: f.SDFFilterID})
		case ie.ApplicationID, ie.EthernetPacketFilter, ie.EthernetPDUSessionInformation,
			ie.TrafficEndpointID, ie.FramedRoute, ie.FramedIPv6Route, ie.FramedRouting, ie.IPMulticastAddressingInfo:
			return bad("PDI IE %d is not supported", k.Type)
		}
	}
	p.ueV4, p.ueV6 = ue4, ue6
	if p.fteid.set && p.source != ifaceAccess {
		return bad("a local F-TEID is only supported on source interface ACCESS")
	}
	return nil
}

// localFTEID resolves a PDI's local F-TEID: CH allocates a TEID, the same
// CHOOSE ID within a session gets the same TEID, an explicit TEID is taken
// unless another session owns it.
func (b *build) localFTEID(p *pdrState, k *ie.IE, op uint16) *causeError {
	f, err := decode(k.FTEID)
	if err != nil {
		return fail(ie.CauseRuleCreationModificationFailure, op, "PDR %d: F-TEID: %w", p.id, err).rule(ie.RuleIDTypePDR, uint32(p.id))
	}
	cfg := &b.srv.cfg
	if !f.HasCh() {
		a4, a6 := addrFromIP(f.IPv4Address), addrFromIP(f.IPv6Address)
		if f.TEID == 0 || (!f.HasIPv4() && !f.HasIPv6()) {
			return fail(ie.CauseRuleCreationModificationFailure, op, "PDR %d: explicit F-TEID needs a non-zero TEID and an address", p.id).rule(ie.RuleIDTypePDR, uint32(p.id))
		}
		if o, ok := b.srv.teids[f.TEID]; ok && o != b.ss.seid {
			return fail(ie.CauseRuleCreationModificationFailure, op, "PDR %d: TEID %#x belongs to another session", p.id, f.TEID).rule(ie.RuleIDTypePDR, uint32(p.id))
		}
		p.fteid = fteidState{set: true, teid: f.TEID, v4: a4, v6: a6}
		return nil
	}
	want4, want6 := f.HasIPv4(), f.HasIPv6()
	has4 := want4 && cfg.N3v4.IsValid()
	has6 := want6 && cfg.N3v6.IsValid()
	if !has4 && !has6 {
		return fail(ie.CauseInvalidFTEIDAllocationOption, 0, "PDR %d: CHOOSE F-TEID for IPv4=%t IPv6=%t, but the UPF has N3 IPv4 %v IPv6 %v",
			p.id, want4, want6, cfg.N3v4, cfg.N3v6)
	}
	st := fteidState{set: true, chosen: true, chid: f.ChooseID, hasCHID: f.HasChID()}
	if has4 {
		st.v4 = cfg.N3v4
	}
	if has6 {
		st.v6 = cfg.N3v6
	}
	if st.hasCHID {
		if t, ok := b.ss.chids[f.ChooseID]; ok {
			st.teid = t
			p.fteid = st
			return nil
		}
	}
	t, ok := b.srv.allocTEID(b.teids)
	if !ok {
		return fail(ie.CauseNoResourcesAvailable, 0, "no free TEID")
	}
	b.teids[t] = true
	st.teid = t
	if st.hasCHID {
		b.ss.chids[f.ChooseID] = t
	}
	p.fteid = st
	return nil
}

// ---- FAR ----

func (b *build) createFAR(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.FARID, "Create FAR", func(x *ie.IE) func() (uint32, error) { return x.FARID })
	if ce != nil {
		return ce
	}
	if _, dup := b.ss.fars[id]; dup {
		return fail(ie.CauseRuleCreationModificationFailure, ie.CreateFAR, "FAR %d already exists", id).rule(ie.RuleIDTypeFAR, id)
	}
	aa := find(kids, ie.ApplyAction)
	if aa == nil {
		return missing(ie.ApplyAction, "Create FAR")
	}
	f := farState{op: ie.CreateFAR, id: id}
	if ce := applyAction(&f, aa, ie.CreateFAR); ce != nil {
		return ce
	}
	if fp := find(kids, ie.ForwardingParameters); fp != nil {
		if ce := forwarding(&f, fp, ie.CreateFAR, true); ce != nil {
			return ce
		}
	}
	if ce := farUnsupported(&f, kids, ie.CreateFAR); ce != nil {
		return ce
	}
	b.ss.fars[id] = f
	return nil
}

func (b *build) updateFAR(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.FARID, "Update FAR", func(x *ie.IE) func() (uint32, error) { return x.FARID })
	if ce != nil {
		return ce
	}
	f, ok := b.ss.fars[id]
	if !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.UpdateFAR, "FAR %d does not exist", id).rule(ie.RuleIDTypeFAR, id)
	}
	f.op = ie.UpdateFAR
	if aa := find(kids, ie.ApplyAction); aa != nil {
		if ce := applyAction(&f, aa, ie.UpdateFAR); ce != nil {
			return ce
		}
	}
	if fp := find(kids, ie.UpdateForwardingParameters); fp != nil {
		if ce := forwarding(&f, fp, ie.UpdateFAR, false); ce != nil {
			return ce
		}
	}
	if ce := farUnsupported(&f, kids, ie.UpdateFAR); ce != nil {
		return ce
	}
	b.ss.fars[id] = f
	return nil
}

func (b *build) removeFAR(x *ie.IE) *causeError {
	idIE := find(x.ChildIEs, ie.FARID)
	if idIE == nil {
		return missing(ie.FARID, "Remove FAR")
	}
	id, err := decode(idIE.FARID)
	if err != nil {
		return incorrect(ie.FARID, "Remove FAR", err)
	}
	if _, ok := b.ss.fars[id]; !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.RemoveFAR, "FAR %d does not exist", id).rule(ie.RuleIDTypeFAR, id)
	}
	delete(b.ss.fars, id)
	return nil
}

func applyAction(f *farState, aa *ie.IE, op uint16) *causeError {
	if err := aa.ValidateApplyAction(); err != nil {
		return incorrect(ie.ApplyAction, "FAR", err)
	}
	if aa.HasDUPL() || aa.HasIPMA() || aa.HasIPMD() {
		return fail(ie.CauseRuleCreationModificationFailure, op, "FAR %d: apply action %x: duplication and IP multicast are not supported", f.id, aa.Payload).rule(ie.RuleIDTypeFAR, f.id)
	}
	f.forw, f.drop, f.buff, f.nocp = aa.HasFORW(), aa.HasDROP(), aa.HasBUFF(), aa.HasNOCP()
	return nil
}

// forwarding applies (Update) Forwarding Parameters: a Create FAR's
// replace the FAR's, an Update FAR's change the fields present.
func forwarding(f *farState, fp *ie.IE, op uint16, create bool) *causeError {
	bad := func(format string, args ...any) *causeError {
		return fail(ie.CauseRuleCreationModificationFailure, op, "FAR %d: "+format, append([]any{f.id}, args...)...).rule(ie.RuleIDTypeFAR, f.id)
	}
	kids := fp.ChildIEs
	if create {
		f.hasDest, f.network, f.ohc = false, "", ohcState{}
		if find(kids, ie.DestinationInterface) == nil {
			return missing(ie.DestinationInterface, "Forwarding Parameters")
		}
	}
	for _, k := range kids {
		switch k.Type {
		case ie.DestinationInterface:
			v, err := decode(k.DestinationInterface)
			if err != nil {
				return incorrect(ie.DestinationInterface, "Forwarding Parameters", err)
			}
			f.dest, f.hasDest = v, true
		case ie.NetworkInstance:
			f.network, _ = decode(k.NetworkInstance)
		case ie.OuterHeaderCreation:
			o, err := decode(k.OuterHeaderCreation)
			if err != nil {
				return bad("outer header creation: %w", err)
			}
			if o.OuterHeaderCreationDescription&^(ohcGTPUv4|ohcGTPUv6) != 0 || o.OuterHeaderCreationDescription == 0 {
				return bad("outer header creation %#04x: only GTP-U/UDP/IPv4 and GTP-U/UDP/IPv6 are supported", o.OuterHeaderCreationDescription)
			}
			f.ohc = ohcState{set: true, desc: o.OuterHeaderCreationDescription, teid: o.TEID,
				v4: addrFromIP(o.IPv4Address), v6: addrFromIP(o.IPv6Address)}
		case ie.RedirectInformation, ie.ForwardingPolicy, ie.HeaderEnrichment, ie.Proxying:
			return bad("forwarding parameter IE %d is not supported", k.Type)
		}
	}
	return nil
}

func farUnsupported(f *farState, kids []*ie.IE, op uint16) *causeError {
	for _, k := range kids {
		switch k.Type {
		case ie.DuplicatingParameters, ie.UpdateDuplicatingParameters, ie.RedundantTransmissionForwardingParameters:
			return fail(ie.CauseRuleCreationModificationFailure, op, "FAR %d: IE %d is not supported", f.id, k.Type).rule(ie.RuleIDTypeFAR, f.id)
		}
	}
	return nil
}

// ---- QER ----

func (b *build) createQER(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.QERID, "Create QER", func(x *ie.IE) func() (uint32, error) { return x.QERID })
	if ce != nil {
		return ce
	}
	if _, dup := b.ss.qers[id]; dup {
		return fail(ie.CauseRuleCreationModificationFailure, ie.CreateQER, "QER %d already exists", id).rule(ie.RuleIDTypeQER, id)
	}
	if find(kids, ie.GateStatus) == nil {
		return missing(ie.GateStatus, "Create QER")
	}
	q := qerState{op: ie.CreateQER, id: id}
	if ce := qerFields(&q, kids, ie.CreateQER); ce != nil {
		return ce
	}
	b.ss.qers[id] = q
	return nil
}

func (b *build) updateQER(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.QERID, "Update QER", func(x *ie.IE) func() (uint32, error) { return x.QERID })
	if ce != nil {
		return ce
	}
	q, ok := b.ss.qers[id]
	if !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.UpdateQER, "QER %d does not exist", id).rule(ie.RuleIDTypeQER, id)
	}
	q.op = ie.UpdateQER
	if ce := qerFields(&q, kids, ie.UpdateQER); ce != nil {
		return ce
	}
	b.ss.qers[id] = q
	return nil
}

func (b *build) removeQER(x *ie.IE) *causeError {
	idIE := find(x.ChildIEs, ie.QERID)
	if idIE == nil {
		return missing(ie.QERID, "Remove QER")
	}
	id, err := decode(idIE.QERID)
	if err != nil {
		return incorrect(ie.QERID, "Remove QER", err)
	}
	if _, ok := b.ss.qers[id]; !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.RemoveQER, "QER %d does not exist", id).rule(ie.RuleIDTypeQER, id)
	}
	delete(b.ss.qers, id)
	b.unreference(func(p *pdrState) *[]uint32 { return &p.qerIDs }, id)
	return nil
}

func qerFields(q *qerState, kids []*ie.IE, op uint16) *causeError {
	for _, k := range kids {
		switch k.Type {
		case ie.GateStatus:
			ul, dl, err := gateStatus(k)
			if err != nil {
				return incorrect(ie.GateStatus, "QER", err)
			}
			q.ulGate, q.dlGate = ul, dl
		case ie.MBR:
			ul, err := decode(k.MBRUL)
			if err != nil {
				return fail(ie.CauseRuleCreationModificationFailure, op, "QER %d: MBR: %w", q.id, err).rule(ie.RuleIDTypeQER, q.id)
			}
			dl, _ := decode(k.MBRDL)
			q.ulMBR, q.dlMBR = kbps(ul), kbps(dl)
		case ie.QFI:
			v, err := decode(k.QFI)
			if err != nil || v > 63 {
				return fail(ie.CauseRuleCreationModificationFailure, op, "QER %d: QFI %d: %v", q.id, v, err).rule(ie.RuleIDTypeQER, q.id)
			}
			q.qfi, q.hasQFI = v, true
		case ie.PacketRate, ie.PacketRateStatus:
			return fail(ie.CauseRuleCreationModificationFailure, op, "QER %d: packet rate limits are not supported", q.id).rule(ie.RuleIDTypeQER, q.id)
		}
	}
	return nil
}

func gateStatus(k *ie.IE) (ul, dl uint8, err error) {
	v, err := decode(k.GateStatus)
	if err != nil {
		return 0, 0, err
	}
	return v >> 2 & 3, v & 3, nil
}

// kbps converts an MBR (kilobits per second) to bit/s, bounded by what the
// datapath accepts (100 Gbit/s, far above any one session's rate).
func kbps(v uint64) uint64 {
	const limit = 100_000_000 // kbit/s = enforcer.MaxMBR
	return min(v, limit) * 1000
}

// ---- URR ----

func (b *build) createURR(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.URRID, "Create URR", func(x *ie.IE) func() (uint32, error) { return x.URRID })
	if ce != nil {
		return ce
	}
	if _, dup := b.ss.urrs[id]; dup {
		return fail(ie.CauseRuleCreationModificationFailure, ie.CreateURR, "URR %d already exists", id).rule(ie.RuleIDTypeURR, id)
	}
	if find(kids, ie.MeasurementMethod) == nil {
		return missing(ie.MeasurementMethod, "Create URR")
	}
	if find(kids, ie.ReportingTriggers) == nil {
		return missing(ie.ReportingTriggers, "Create URR")
	}
	now := b.srv.now()
	u := urrState{op: ie.CreateURR, id: id, start: now}
	if ce := urrFields(&u, kids, ie.CreateURR, now); ce != nil {
		return ce
	}
	b.ss.urrs[id] = u
	return nil
}

func (b *build) updateURR(x *ie.IE) *causeError {
	kids := x.ChildIEs
	id, ce := ruleID(kids, ie.URRID, "Update URR", func(x *ie.IE) func() (uint32, error) { return x.URRID })
	if ce != nil {
		return ce
	}
	u, ok := b.ss.urrs[id]
	if !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.UpdateURR, "URR %d does not exist", id).rule(ie.RuleIDTypeURR, id)
	}
	u.op = ie.UpdateURR
	if ce := urrFields(&u, kids, ie.UpdateURR, b.srv.now()); ce != nil {
		return ce
	}
	b.ss.urrs[id] = u
	return nil
}

func (b *build) removeURR(x *ie.IE) *causeError {
	idIE := find(x.ChildIEs, ie.URRID)
	if idIE == nil {
		return missing(ie.URRID, "Remove URR")
	}
	id, err := decode(idIE.URRID)
	if err != nil {
		return incorrect(ie.URRID, "Remove URR", err)
	}
	u, ok := b.ss.urrs[id]
	if !ok {
		return fail(ie.CauseRuleCreationModificationFailure, ie.RemoveURR, "URR %d does not exist", id).rule(ie.RuleIDTypeURR, id)
	}
	// The removed URR's final usage goes into the response (TS 29.244 7.5.4).
	b.reports = append(b.reports, takeReport(&u, trigTERMR, b.srv.now()))
	delete(b.ss.urrs, id)
	b.unreference(func(p *pdrState) *[]uint32 { return &p.urrIDs }, id)
	return nil
}

func urrFields(u *urrState, kids []*ie.IE, op uint16, now time.Time) *causeError {
	bad := func(format string, args ...any) *causeError {
		return fail(ie.CauseRuleCreationModificationFailure, op, "URR %d: "+format, append([]any{u.id}, args...)...).rule(ie.RuleIDTypeURR, u.id)
	}
	for _, k := range kids {
		switch k.Type {
		case ie.MeasurementMethod:
			m, err := decode(k.MeasurementMethod)
			if err != nil {
				return incorrect(ie.MeasurementMethod, "URR", err)
			}
			if m&2 == 0 {
				return bad("measurement method %#x: only volume (VOLUM) is measured", m)
			}
			u.method = m
		case ie.ReportingTriggers:
			t, err := decode(k.ReportingTriggers)
			if err != nil {
				return incorrect(ie.ReportingTriggers, "URR", err)
			}
			u.trig = triggers{perio: t[0]&0x01 != 0, volth: t[0]&0x02 != 0, volqu: t[1]&0x01 != 0}
		case ie.VolumeThreshold:
			v, err := decode(k.VolumeThreshold)
			if err != nil {
				return bad("volume threshold: %w", err)
			}
			u.threshold = volumeLimit{flags: v.Flags & 7, total: v.TotalVolume, ul: v.UplinkVolume, dl: v.DownlinkVolume}
		case ie.VolumeQuota:
			v, err := decode(k.VolumeQuota)
			if err != nil {
				return bad("volume quota: %w", err)
			}
			// A new quota starts a new count and lifts a block.
			u.quota = volumeLimit{flags: v.Flags & 7, total: v.TotalVolume, ul: v.UplinkVolume, dl: v.DownlinkVolume}
			u.sinceQuota, u.quotaExhausted = volumes{}, false
		case ie.MeasurementPeriod:
			d, err := decode(k.MeasurementPeriod)
			if err != nil || d <= 0 {
				return bad("measurement period %v: %v", d, err)
			}
			u.period = d
			u.nextPeriodic = now.Add(d)
		case ie.TimeThreshold, ie.TimeQuota, ie.EventThreshold, ie.EventQuota, ie.MonitoringTime,
			ie.SubsequentVolumeThreshold, ie.SubsequentTimeThreshold, ie.SubsequentVolumeQuota,
			ie.SubsequentTimeQuota, ie.SubsequentEventThreshold, ie.SubsequentEventQuota:
			return bad("IE %d: only volume thresholds, volume quotas and periodic reports are supported", k.Type)
		}
	}
	if u.trig.perio && u.period == 0 {
		return fail(ie.CauseConditionalIEMissing, ie.MeasurementPeriod, "URR %d: periodic reporting without a measurement period", u.id).rule(ie.RuleIDTypeURR, u.id)
	}
	return nil
}

// unreference drops a removed QER or URR from the PDRs naming it: the SMF
// removed it, so no PDR applies it any more.
func (b *build) unreference(list func(*pdrState) *[]uint32, id uint32) {
	for pid, p := range b.ss.pdrs {
		l := list(&p)
		if slices.Contains(*l, id) {
			*l = slices.DeleteFunc(slices.Clone(*l), func(x uint32) bool { return x == id })
			b.ss.pdrs[pid] = p
		}
	}
}
