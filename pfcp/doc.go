// Package pfcp is the UPF's N4 endpoint: a PFCP server (TS 29.244, with
// go-pfcp for all encoding and decoding) that turns each PFCP session an SMF
// provisions into one enforcer.Session and installs it in the datapath.
//
// # Messages
//
// Node level: Association Setup, Update and Release Request are answered
// (Node ID, Cause, Recovery Time Stamp, UP Function Features advertising
// FTUP only: the UPF allocates F-TEIDs). Heartbeat Requests are answered
// with our Recovery Time Stamp; with HeartbeatInterval > 0 the server sends
// its own heartbeats to each associated peer and matches the responses by
// sequence number. PFD Management, Node Report and Session Set Deletion
// Requests are answered with Cause 76 "Service not supported"; a message of
// PFCP version other than 1 gets a Version Not Supported Response; unknown
// message types and responses we never asked for are dropped and counted.
// Messages that do not decode are dropped and change nothing.
//
// Session level: Session Establishment, Modification and Deletion; Session
// Report Requests are sent (Report Type USAR) when a URR's volume threshold
// or quota is reached or its measurement period ends, retransmitted after
// 3 s up to 3 times until the Session Report Response arrives.
//
// # Peers and associations
//
// PFCP is accepted only from AllowedPeers (default: loopback only). Other
// sources are logged (once a minute per address) and counted; an
// Association Setup Request from them is answered with Cause 64 "Request
// rejected", everything else is dropped. Session requests from a peer
// without association get Cause 72. A session belongs to the association
// that created it: another association's modification or deletion gets
// Cause 65 "Session context not found", as for an unknown SEID, so the
// session's existence does not leak (PIN isolation, TR 33.882 KI#2).
// UPF-initiated requests (heartbeats, session reports) go to the address
// and port the association's setup came from.
//
// Peer restart (TS 23.007): a peer re-associating with a different Recovery
// Time Stamp has restarted: its sessions are removed from the datapath and
// from memory, always. A Recovery Time Stamp change seen in a heartbeat and
// unanswered heartbeats are weak evidence (some simulators send the current
// time in every heartbeat, some never answer UPF heartbeats): by default
// (PurgeOnPeerRestart false) they are only logged and counted. With
// PurgeOnPeerRestart, a heartbeat RTS change purges the peer's sessions, and
// a peer that misses HeartbeatRetries (default 3) heartbeats in a row loses
// its association and sessions. A peer that has never answered a heartbeat
// is never counted as lost. UPF heartbeats are off by default
// (HeartbeatInterval 0).
//
// # Translation into the datapath session
//
// Each request builds a new copy of the PFCP session (removals, then
// creations, then updates), translates the whole of it into one
// enforcer.Session and calls InstallSession (make-before-break, atomic)
// before the response is sent: a rule is active when the SMF learns it was
// accepted. Only then is the copy committed. A request that fails, in
// translation or in the datapath, changes nothing in memory or in the maps,
// and carries the Cause, Offending IE and (Cause 73) Failed Rule ID.
//
//   - PDR: Source Interface ACCESS → uplink rules, CORE and SGi-LAN/N6-LAN →
//     downlink rules, CP-function → Cause 73. Precedence → Rule.Precedence.
//     Network Instance and PDI QFIs are recorded, not enforced.
//   - Local F-TEID (ACCESS PDRs only): CH allocates a random non-zero TEID,
//     unique in the UPF, with N3v4/N3v6 as requested (none of the requested
//     families configured → Cause 71); the same CHOOSE ID within a session
//     gets the same TEID; an explicit TEID from the CP is accepted unless
//     another session owns it (Cause 73). Chosen F-TEIDs come back in Created
//     PDR (Updated PDR when an Update PDR's new PDI chose one). The datapath
//     maps every TEID to its session: a session's rules apply to all its
//     TEIDs alike.
//   - UE IP Address: V4 → Session.UEv4; V6 → Session.UEv6 with length
//     64 − IPv6 Prefix Delegation Bits (IPv6D), or the IPv6 Prefix Length
//     (IP6PL), else /128: a plain IPv6 address is taken as that one address,
//     not its /64. PDRs disagreeing on the UE address → Cause 73. UE address
//     allocation by the UPF (CHV4/CHV6) is not supported (Cause 73). S/D is
//     not needed: the UE is the PINE side in both directions.
//   - SDF filters: the Flow Description (package flowdesc) is written from
//     the data network ("from") to the UE ("to"); for ACCESS PDRs source and
//     destination swap, so in both directions "to" names the PINE and "from"
//     the remote side. The PINE address is "to": a single address is exact;
//     "assigned" or "any" is the session's UE addresses of the filter's
//     family; the session's whole IPv6 prefix counts as those addresses. A
//     filter covering all of the session's addresses without protocol or
//     ports is a rule for any address; covering exactly one address (the
//     UE IPv4 address, a /128 prefix) it becomes that address. Anything else
//     (a PINE prefix, a protocol or ports on a multi-address prefix, ports
//     without TCP/UDP/SCTP, ToS/SPI/flow label) is refused with Cause 73,
//     never approximated. The remote side is not enforced by the datapath:
//     accepted, recorded, logged once per session. Each filter becomes one
//     rule with ID pdrID<<8 | filter index; a PDR without filter is one rule
//     for any address of the session. That a rule claims only its session's
//     addresses is checked by the enforcer (ErrBadRule → Cause 73). More
//     than MaxRulesPerSession (default 1024) rules → Cause 73.
//   - Outer Header Removal on uplink PDRs: 0, 1 and 6 (GTP-U/UDP/IP) are
//     accepted, others → 73; absent, it is implied (the datapath always
//     decapsulates N3 uplink traffic). On downlink PDRs → 73.
//   - FAR: FORW → forward, DROP → drop, BUFF → drop (XDP cannot hold
//     packets), NOCP recorded but not reported (no downlink data trigger in
//     the datapath). DUPL, IPMA, IPMD, redirect, forwarding policy, header
//     enrichment → 73. Downlink forwarding needs Outer Header Creation
//     GTP-U/UDP/IPv4 or /IPv6 → Rule.Tunnel (peer TEID and address). The
//     tunnel's QFI is the QFI IE of the PDR's QERs (the QFI the UPF must put
//     in the GTP-U header, TS 29.244 8.2.89), else 0; QERs with different
//     QFIs → 73. Uplink Outer Header Creation (N9) → 73. Update FAR applies
//     Update Forwarding Parameters field by field.
//   - QER: Gate Status (0 open, 1 closed; 2 and 3 count as closed), MBR
//     (kbit/s → bit/s, capped at enforcer.MaxMBR); GBR accepted, not
//     enforced (a guarantee, not a limit); Packet Rate → 73. A PDR with more
//     than enforcer.MaxQERsPerRule (2) QERs → 73.
//   - URR: Measurement Method must include VOLUM (duration and events are
//     not measured; with VOLUM they are accepted and only volume is
//     reported). Reporting triggers acted on: VOLTH, VOLQU, PERIO (with
//     Measurement Period); other trigger bits are accepted and never fire.
//     Time and event thresholds/quotas, monitoring time and subsequent
//     thresholds → 73. Usage is the sum of enforcer.RuleUsage over the rules
//     of the PDRs naming the URR (inner IP bytes and packets, uplink or
//     downlink by rule direction), read every UsagePollInterval (default
//     1 s) and on each modification and deletion. Volume Measurement reports
//     the volume since the URR's previous report. A volume quota reached
//     blocks the PDRs naming the URR (their rules drop) until an Update URR
//     brings a new Volume Quota. Usage Reports go in Session Report Requests
//     (VOLTH, VOLQU, PERIO), Session Modification Responses (Remove URR:
//     TERMR; Query URR and the QAURR flag: IMMER) and Session Deletion
//     Responses (TERMR).
//   - Create BAR and other IEs not named here are accepted and ignored.
//
// Cause mapping: 66 mandatory IE missing, 67 conditional IE missing (FAR ID
// in Create PDR, Measurement Period for PERIO), 69 mandatory IE incorrect,
// 65 session not found, 72 no association, 64 request rejected (peers
// outside AllowedPeers), 71 invalid F-TEID allocation option, 73 rule
// creation/modification failure (untranslatable rules; enforcer ErrBadRule
// or ErrConflict), 75 no resources (enforcer ErrFull), 77 system failure
// (other enforcer errors).
//
// # Persistence and restart
//
// The server's state — associations (Node ID, peer address and port,
// Recovery Time Stamp) and sessions (SEIDs, owner, PDR/FAR/QER/URR in the
// server's own form with F-TEIDs and CHOOSE ID bindings, URR measurements
// and UR-SEQNs, the installed enforcer.Session) — is exported as the
// versioned, JSON-serializable State (ExportState). Config.OnChange
// receives, after the datapath change and before the response is sent,
// the Change an accepted request made: only the sessions it touched (and
// all associations, few, when one changed), so persisting costs the size
// of that session. Usage polls that take a report or block PDRs are
// persisted the same way before the report leaves. ImportState, before
// Serve, rebuilds associations and sessions without calling the
// datapath (the caller restored the enforcer first); imported TEIDs and
// SEIDs are taken for the allocators; the Recovery Time Stamp must be the
// one the state was saved under. Not persisted: the response cache,
// outstanding heartbeats and session reports awaiting an answer.
//
// Modifications replace the datapath session with ReplaceSession: the
// final usage of the rules a change removes is folded into the URRs of
// their PDR that the session keeps. Enforcer refusals naming a rule
// (enforcer.RuleError) come back with Failed Rule ID (the rule's PDR).
// ServerStats.HeartbeatRTT has the last round-trip time of our heartbeats
// per peer.
//
// # Retransmissions
//
// A request repeating the (peer address and port, sequence number) of a
// recent request with identical bytes is answered from a response cache
// (ResponseCacheSize entries, ResponseCacheAge) and not executed again. The
// same sequence number with different bytes is a new request.
package pfcp
