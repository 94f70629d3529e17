// Package pinauth is the SMF side of PINE authentication (TR 33.882
// solutions #2, #3 and #5): an EAP authenticator in pass-through mode that
// relays EAP between a PIN Element (through its PEGC) and the PIN service
// provider's DN-AAA over RADIUS (RFC 3579), and installs the PINE's rules in
// pine-upf over PFCP only once the DN-AAA has accepted it.
//
// # Message flow
//
//	PINE (eap.Peer)      PEGC (Relay)          Authenticator (SMF)         DN-AAA (RADIUS)       pine-upf (PFCP)
//	                     admit{PINE ID, EAP identity, address, ports, [AAA]} ──►
//	     ◄──────────────── EAP-Request/Identity ───
//	     ─── EAP-Response/Identity ──────────────► identity == claimed one?
//	                                               Access-Request{User-Name, EAP-Message,
//	                                               Message-Authenticator, Acct-Session-Id, ...} ──►
//	                                               ◄── Access-Challenge{EAP-Request/MD5, State}
//	     ◄──────────────── EAP-Request/MD5-Challenge
//	     ─── EAP-Response/MD5 ───────────────────► Access-Request{EAP-Message, State, MA} ──►
//	                                               ◄── Access-Accept{EAP-Success, QoS}
//	                                               Session Modification (Create PDR/FAR/QER/URR) ──►
//	                                               ◄── Session Modification Response (accepted)
//	     ◄──────────────── EAP-Success ──────────── (only now: rules are in the datapath)
//
// On Access-Reject, on no authentic answer after the retries, on a
// malformed exchange or on an identity mismatch the authenticator installs
// nothing and sends EAP-Failure to the peer. Every RADIUS answer must carry
// a valid Response Authenticator and Message-Authenticator; one that does
// not is discarded as if lost (RFC 3579 §3.2), so a forged or tampered
// answer can only delay the exchange, never complete it.
//
// # Revocation
//
// The authenticator listens for RFC 5176 Disconnect-Requests (from the
// DN-AAA, or from `pine-smf revoke`). A request is acted on only if it comes
// from a known dynamic-authorization client, its Request Authenticator and
// Message-Authenticator verify with that client's secret, its
// Event-Timestamp (required by default) is within the window, it is not a
// replay of a request already seen (seen requests are remembered for the
// window; a retransmission gets the first answer again, unacted), and it
// names a live session (Acct-Session-Id, or User-Name for all sessions of a
// PINE identity). The PINE's rules are then removed with a Session
// Modification (smfsim.Session.RemovePINE) and Disconnect-ACK is sent;
// otherwise Disconnect-NAK with an Error-Cause.
//
// # PEGC relay wire format
//
// Between the PEGC and the authenticator (cmd/pine-smf) the stand-in for
// the N1 PDU Session Modification signalling is one TCP connection per
// admission carrying newline-delimited JSON objects (WireMessage):
//
//	PEGC → SMF  {"type":"admit","pegc":"10.45.0.2","pine_id":1,"eap_identity":"pine-a@psp.example",
//	             "addr":"10.45.0.2","proto":17,"ports":["5000-5009"],"aaa":"127.0.0.1:18120"}
//	SMF → PEGC  {"type":"eap","eap":"<base64 EAP packet>"}     (a Request for the PINE)
//	PEGC → SMF  {"type":"eap","eap":"<base64 EAP packet>"}     (the PINE's Response)
//	  … repeated …
//	SMF → PEGC  {"type":"result","ok":true,"eap":"<base64 EAP-Success>","session_id":"…"}
//	            {"type":"result","ok":false,"eap":"<base64 EAP-Failure>","error":"…"}
//
// The PINE–PEGC hop (non-3GPP access, out of 3GPP scope) is in-process: the
// PEGC hands each EAP packet to the PINE's eap.Peer and returns its answer.
package pinauth
