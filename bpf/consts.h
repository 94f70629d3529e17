/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Constants and enums shared with Go (generated with bpf2go -type). */
#ifndef PINE_CONSTS_H
#define PINE_CONSTS_H

#define GTPU_PORT 2152
#define GTP_TYPE_GPDU 255
#define GTP_EXT_PSC 0x85 /* PDU Session Container (TS 38.415) */
#define GTP_FLAGS_V1_PT 0x30
#define GTP_FLAG_E 0x04
#define GTP_FLAGS_OPT 0x07 /* E, S or PN: the 4 optional bytes are present */

#define MAX_VLAN 2     /* 802.1Q / 802.1ad tags walked on ingress */
#define MAX_GTP_EXT 4  /* extension headers walked before "malformed" */
#define MAX_V6_EXT 4   /* inner IPv6 extension headers skipped */
#define CSUM_CHUNK 512 /* bpf_csum_diff limit */
#define CSUM_CHUNKS 8  /* 4 KiB: more than any single-buffer XDP frame */

#define OUTER_TTL 64
#define NSEC_PER_SEC 1000000000ULL

/* Continue processing; any other value is a final XDP action. */
#define CONTINUE -1

enum dir {
	DIR_UL = 0, /* N3 in: GTP-U from the gNB */
	DIR_DL = 1, /* N6 in: plain IP from the data network */
	DIR_MAX = 2,
};

/* Why a packet left the program. Index into the stats map with dir. */
enum reason {
	R_FORWARD = 0,      /* redirected out of N6 (UL) or N3 (DL) */
	R_PASS_OTHER,       /* not for us: not GTP-U on N3, not to a UE on N6 */
	R_PASS_CONTROL,     /* GTP-U signalling (echo, error indication, end marker) */
	R_PASS_FRAGMENT,    /* outer IP fragment: the kernel reassembles */
	R_PASS_FIB,         /* no neighbour / fragmentation needed: kernel forwards */
	R_PASS_TTL,         /* inner TTL/hop limit expired: kernel sends ICMP */
	R_DROP_UNKNOWN_TEID,
	R_DROP_SPOOFED,     /* UL inner source outside the session's addresses */
	R_DROP_NO_RULE,     /* default deny: no PINE rule matches */
	R_DROP_GATE,        /* QER gate closed */
	R_DROP_RATE,        /* QER maximum bit rate exceeded */
	R_DROP_MALFORMED,   /* truncated or inconsistent headers */
	R_DROP_ACTION,      /* the matching rule says drop */
	R_DROP_NO_ROUTE,    /* FIB lookup failed (or no neighbour, fallback off) */
	R_MAX,
};

/* Deny-event accounting, index into event_stats. */
enum event_stat {
	EV_SENT = 0,
	EV_SUPPRESSED, /* over the per-session rate */
	EV_LOST,       /* ring buffer full */
	EV_MAX,
};

enum action {
	ACT_FORWARD = 1,
	ACT_DROP = 2,
};

/*
 * Rule lookup levels, most specific first. A packet's key is tried at each
 * populated level; the first hit holds the precedence winner among every
 * rule that covers it (compiled by the enforcer), so the first hit is final.
 */
enum level {
	L_PORT = 0,  /* exact port */
	L_PORT16,    /* aligned block of 16 ports */
	L_PORT256,   /* aligned block of 256 ports */
	L_PORT4096,  /* aligned block of 4096 ports */
	L_PROTO,     /* address + protocol, any port */
	L_ADDR,      /* address, any protocol */
	L_SESSION,   /* any address within the session */
	L_MAX,
};

/* rule_key.meta: generation, direction and level in one byte. */
#define RULE_META(gen, dir, level) (((gen) << 7) | ((dir) << 6) | (level))

enum flags {
	SESS_F_V4 = 0x01,
	SESS_F_V6 = 0x02,
	RULE_F_OUTER_V6 = 0x01,   /* DL: encapsulate in IPv6 (else IPv4) */
	QER_F_GATE_CLOSED = 0x01,
};

#endif
