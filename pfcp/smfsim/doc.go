// Package smfsim is a simulated SMF for driving pine-upf (or any UPF) over
// PFCP (N4, TS 29.244). It behaves like the open5gs and free5gc SMFs do,
// with every message encoded and decoded by github.com/wmnsk/go-pfcp.
//
// A Client owns one UDP socket toward one UPF and one reader goroutine.
// Requests get a 24-bit sequence number (starting at a random value, so a
// new process never collides with a previous one in the UPF's response
// cache), are retransmitted on timeout with the same sequence number
// (T1 = Options.Timeout, N1 = Options.Retries) and matched to their
// response by sequence number and type. Requests from the UPF (Heartbeat,
// Session Report, Node Report, Association Update/Release) are answered
// automatically; a retransmitted one gets the cached answer and is not
// acted on twice. Session Reports are also delivered on Reports().
//
// Typical use:
//
//	c, _ := smfsim.Dial(ctx, "127.0.0.1:8805", smfsim.Options{})
//	defer c.Close()
//	c.Associate(ctx)
//	s, _ := c.EstablishPEGC(ctx, smfsim.PEGC{UEIPv4: ue, GNB: gnb, GNBTEID: 0x100,
//		Default: &smfsim.DefaultRule{Filter: "permit out ip from any to assigned"}})
//	s.AddPINE(ctx, smfsim.PINE{ID: 1, Addr: ue, Proto: 17,
//		Ports: []smfsim.PortRange{{5000, 5009}}})
//	s.RemovePINE(ctx, 1)
//	usage, _ := s.Delete(ctx)
//	c.Release(ctx)
//
// # Messages
//
// Session Establishment Request: Node ID, CP F-SEID (SEID, local address),
// for the default rule (slot 0) and each initial PINE two Create PDRs, two
// Create FARs, a Create URR and a Create QER, then PDN Type. The uplink
// PDRs' Local F-TEID is CH=1, CHID=PEGC.ChooseID (V4 or V6 by the gNB's
// family), so the UPF allocates one TEID for all of them; it is taken from
// the Created PDRs and the call fails if they differ.
//
// Uplink PDR: PDR ID, Precedence, PDI {Source Interface ACCESS, Local
// F-TEID, [Network Instance], UE IP Address (source), SDF Filter(s)}, Outer
// Header Removal (0 GTP-U/UDP/IPv4, or 1 for an IPv6 N3), FAR ID, URR ID,
// QER ID. Downlink PDR: the same with Source Interface CORE, no F-TEID, UE
// IP Address with S/D=1, no Outer Header Removal. Uplink FAR: Apply Action
// FORW, Forwarding Parameters {Destination Interface CORE, [Network
// Instance]}. Downlink FAR: FORW, {Destination Interface ACCESS, Outer
// Header Creation GTP-U/UDP/IPv4 (or /IPv6) with the gNB TEID and address}.
// QER: QER ID, Gate Status (UL=DL), [MBR in kbit/s], QFI. URR: URR ID,
// Measurement Method VOLUM, Reporting Triggers (VOLTH if a threshold is
// set), [Volume Threshold TOVOL].
//
// AddPINE sends the same IEs for one PINE in a Session Modification Request
// whose uplink PDR carries the F-TEID allocated at establishment (CH=0, the
// TEID and N3 address), or CH=1 again with PEGC.ChooseOnModify. RemovePINE
// sends Remove PDR ×2, Remove FAR ×2, Remove URR, Remove QER.
//
// # Flow descriptions
//
// SDF filters use the TS 29.212 §5.4.2 syntax in the downlink sense (the
// UPF swaps source and destination for Source Interface ACCESS), the same
// string on both PDRs, one SDF Filter IE per port range:
//
//	permit out 17 from any to 10.45.0.2 5000-5009
//	permit out 6 from any to 10.45.0.2 8080
//	permit out ip from any to 2001:db8:1:0:aa::2
//
// # Rule IDs
//
// See MaxPINEID: slot n owns PDR 2n+1 (UL) and 2n+2 (DL), FAR 2n+1 and
// 2n+2, QER n+1 and URR n+1; slot 0 is the default rule, slot n is PINE n.
//
// # Errors
//
// A request the UPF rejects returns a *CauseError naming the Cause, the
// Offending IE and the Failed Rule ID when present. A request without
// response after all retransmissions returns an error wrapping ErrTimeout.
package smfsim
