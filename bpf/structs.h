/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Structs shared with Go. All 16-byte addresses hold IPv4 as ::ffff:a.b.c.d. */
#ifndef PINE_STRUCTS_H
#define PINE_STRUCTS_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct session {
	__u8 ue_v6[16];      /* delegated prefix, already masked */
	__u8 ue_v6_mask[16];
	__u32 ue_v4;         /* network byte order */
	__u8 flags;          /* SESS_F_V4 | SESS_F_V6 */
	__u8 gen;            /* generation of the live rule entries */
	__u8 levels[2];      /* per dir: bit L set when gen has entries at level L */
};

struct ue6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* 24 bytes, as is the value: a rule table entry then takes 96 bytes. */
struct rule_key {
	__u32 sid;
	__u8 addr[16]; /* zero at L_SESSION */
	__u16 port;    /* host order, masked to the level's block; 0 above L_PORT4096 */
	__u8 proto;    /* 0 at L_ADDR and L_SESSION */
	__u8 meta;     /* RULE_META(gen, dir, level) */
};

/* The compiled winner for a key: what the datapath applies. */
struct rule {
	__u32 rule_id; /* index into rule_stats */
	__u32 qer[2];  /* QER indices, 0 = none */
	__u32 teid;    /* DL: peer (gNB) TEID */
	__u32 peer;    /* DL: index into peers */
	__u8 action;   /* enum action */
	__u8 flags;    /* RULE_F_* */
	__u8 qfi;      /* DL: QFI in the PDU Session Container */
	__u8 pad;
};

/* A tunnel peer (gNB) address: few of them, shared by many rules. */
struct peer {
	__u8 addr[16];
};

/* Token bucket in byte-nanoseconds, so refill needs no division. */
struct qer {
	struct bpf_spin_lock lock;
	__u32 flags;   /* QER_F_GATE_CLOSED */
	__u64 rate;    /* bytes per second, 0 = no maximum bit rate */
	__u64 cap;     /* burst bytes * 1e9 */
	__u64 fill_ns; /* cap / rate: time to refill from empty */
	__u64 tokens;  /* byte-nanoseconds */
	__u64 last_ns;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct sess_stats {
	struct counter fwd[2];  /* per dir, inner IP bytes */
	struct counter drop[2]; /* per dir, inner IP bytes */
};

/* Per CPU: no lock on the deny path; a session gets at most
 * cfg_events_per_sec events per CPU and second. */
struct ev_limit {
	__u64 window; /* second of the current window (coarse clock) */
	__u32 count;
	__u32 pad;
};

struct deny_event {
	__u64 ts_ns;
	__u32 sid;
	__u32 teid;     /* UL: local TEID */
	__u8 addr[16];  /* the PINE's address */
	__u16 port;     /* host order, 0 when the packet has no ports */
	__u8 proto;
	__u8 reason;    /* enum reason */
	__u8 dir;
	__u8 pad[7];
};

struct scratch {
	__u8 buf[CSUM_CHUNK + 4];
};

#endif
