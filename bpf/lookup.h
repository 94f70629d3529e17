/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Session and PINE rule lookups, anti-spoofing. */
#ifndef PINE_LOOKUP_H
#define PINE_LOOKUP_H

#include "parsing.h"
#include "maps.h"

/* The session owning a downlink destination: UE IPv4 address or IPv6 prefix. */
static __always_inline __u32 *session_by_ue(const struct pkt *p)
{
	if (!p->inner_v6) {
		__u32 a;

		__builtin_memcpy(&a, p->dst + 12, 4);
		return bpf_map_lookup_elem(&ue_v4, &a);
	} else {
		struct ue6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, p->dst, 16);
		return bpf_map_lookup_elem(&ue_v6, &k);
	}
}

/* Uplink anti-spoofing: the inner source is the UE address or in its prefix. */
static __always_inline int source_allowed(const struct session *s, const struct pkt *p)
{
	if (!p->inner_v6) {
		__u32 a;

		__builtin_memcpy(&a, p->src + 12, 4);
		return (s->flags & SESS_F_V4) && a == s->ue_v4;
	} else {
		__u64 a[2], pfx[2], mask[2];

		__builtin_memcpy(a, p->src, 16);
		__builtin_memcpy(pfx, s->ue_v6, 16);
		__builtin_memcpy(mask, s->ue_v6_mask, 16);
		return (s->flags & SESS_F_V6) && (a[0] & mask[0]) == pfx[0] &&
		       (a[1] & mask[1]) == pfx[1];
	}
}

/*
 * Most specific populated level first. Each entry holds the precedence winner
 * over every rule that covers its key, so the first hit is the answer.
 */
static __always_inline struct rule *rule_lookup(__u32 sid, const struct session *s, __u32 dir,
						const struct pkt *p, const __u8 *addr, __u16 port)
{
	__u8 levels = s->levels[dir & 1];
	__u8 gen = s->gen & 1;
	struct rule_key k = {
		.sid = sid,
		.proto = p->proto,
	};
	struct rule *r;

	__builtin_memcpy(k.addr, addr, 16);
	if (p->has_ports) {
#pragma unroll
		for (int l = L_PORT; l <= L_PORT4096; l++) {
			if (!(levels & (1 << l)))
				continue;
			k.meta = RULE_META(gen, dir, l);
			k.port = port & (__u16)(0xffff << (4 * l));
			r = bpf_map_lookup_elem(&rules, &k);
			if (r)
				return r;
		}
	}
	k.port = 0;
	if (levels & (1 << L_PROTO)) {
		k.meta = RULE_META(gen, dir, L_PROTO);
		r = bpf_map_lookup_elem(&rules, &k);
		if (r)
			return r;
	}
	k.proto = 0;
	if (levels & (1 << L_ADDR)) {
		k.meta = RULE_META(gen, dir, L_ADDR);
		r = bpf_map_lookup_elem(&rules, &k);
		if (r)
			return r;
	}
	if (levels & (1 << L_SESSION)) {
		k.meta = RULE_META(gen, dir, L_SESSION);
		__builtin_memset(k.addr, 0, 16);
		return bpf_map_lookup_elem(&rules, &k);
	}
	return 0;
}

#endif
