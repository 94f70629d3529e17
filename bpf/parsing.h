/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing with a cursor, one bounds check per header. Helpers return
 * CONTINUE or a final enum reason. Two bounds are kept: `end` (the frame, for
 * the verifier) and `limit` (where the enclosing header says the data ends).
 */
#ifndef PINE_PARSING_H
#define PINE_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "consts.h"

struct cursor {
	void *pos;
	void *end;   /* data_end */
	void *limit; /* end of the enclosing payload, <= end */
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What the programs need to know about a packet. */
struct pkt {
	__u64 frame_len;
	__u32 teid;       /* UL: local TEID */
	__u16 inner_off;  /* inner IP header, from data */
	__u16 inner_len;  /* inner IP total length, 0 until parsed */
	__u16 sport;      /* host order */
	__u16 dport;
	__u8 inner_v6;
	__u8 proto;
	__u8 has_ports;
	__u8 ttl;
	__u8 qfi;
	__u8 pad[3];
	__u8 src[16];     /* ::ffff:a.b.c.d for IPv4 */
	__u8 dst[16];
};

#define HAS(c, n) ((void *)(c)->pos + (n) <= (c)->end && (void *)(c)->pos + (n) <= (c)->limit)

static __always_inline void addr_from_v4(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* Ethernet plus up to MAX_VLAN tags; the ethertype after them in *proto. */
static __always_inline int parse_eth(struct cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;

	if (!HAS(c, sizeof(*eth)))
		return R_DROP_MALFORMED;
	c->pos += sizeof(*eth);
	*proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN; i++) {
		struct vlan_hdr *vh = c->pos;

		if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD))
			break;
		if (!HAS(c, sizeof(*vh)))
			return R_DROP_MALFORMED;
		*proto = vh->proto;
		c->pos += sizeof(*vh);
	}
	return CONTINUE;
}

/* TCP, UDP and SCTP carry ports; ICMP is checked for its fixed header. */
static __always_inline int parse_l4(struct cursor *c, struct pkt *p)
{
	__u32 need = 0;

	switch (p->proto) {
	case IPPROTO_TCP:
		need = 20;
		p->has_ports = 1;
		break;
	case IPPROTO_UDP:
		need = 8;
		p->has_ports = 1;
		break;
	case IPPROTO_SCTP:
		need = 12;
		p->has_ports = 1;
		break;
	case IPPROTO_ICMP:
		need = p->inner_v6 ? 0 : 8;
		break;
	case IPPROTO_ICMPV6:
		need = p->inner_v6 ? 8 : 0;
		break;
	}
	if (!need)
		return CONTINUE;
	if (!HAS(c, need))
		return R_DROP_MALFORMED;
	if (p->has_ports) {
		__be16 *ports = c->pos;

		if ((void *)(ports + 2) > c->end)
			return R_DROP_MALFORMED;
		p->sport = bpf_ntohs(ports[0]);
		p->dport = bpf_ntohs(ports[1]);
	}
	return CONTINUE;
}

static __always_inline int parse_inner_v4(struct cursor *c, struct pkt *p)
{
	struct iphdr *ip = c->pos;
	__u32 hl, tot;

	if (!HAS(c, sizeof(*ip)))
		return R_DROP_MALFORMED;
	hl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (hl < sizeof(*ip) || tot < hl || !HAS(c, tot) || !HAS(c, hl))
		return R_DROP_MALFORMED;

	p->inner_len = tot;
	p->proto = ip->protocol;
	p->ttl = ip->ttl;
	addr_from_v4(p->src, ip->saddr);
	addr_from_v4(p->dst, ip->daddr);
	c->limit = c->pos + tot;
	c->pos += hl;
	/* A non-first fragment has no transport header: no ports. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return CONTINUE;
	return parse_l4(c, p);
}

static __always_inline int is_v6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	       nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

static __always_inline int parse_inner_v6(struct cursor *c, struct pkt *p)
{
	struct ipv6hdr *ip6 = c->pos;
	__u32 tot;
	__u8 nh;

	if (!HAS(c, sizeof(*ip6)))
		return R_DROP_MALFORMED;
	tot = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (!HAS(c, tot))
		return R_DROP_MALFORMED;

	p->inner_len = tot;
	p->ttl = ip6->hop_limit;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	c->limit = c->pos + tot;
	c->pos += sizeof(*ip6);
	nh = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < MAX_V6_EXT; i++) {
		__u8 *h = c->pos;
		__u32 len;

		if (!is_v6_ext(nh))
			break;
		if (!HAS(c, 8) || (void *)(h + 8) > c->end)
			return R_DROP_MALFORMED;
		if (nh == IPPROTO_FRAGMENT) {
			len = 8;
			if ((h[2] << 8 | h[3]) & 0xfff8) { /* non-first fragment */
				p->proto = h[0];
				return CONTINUE;
			}
		} else if (nh == IPPROTO_AH) {
			len = (h[1] + 2) * 4;
		} else {
			len = (h[1] + 1) * 8;
		}
		if (!HAS(c, len))
			return R_DROP_MALFORMED;
		nh = h[0];
		c->pos += len;
	}
	if (is_v6_ext(nh))
		return R_DROP_MALFORMED;
	p->proto = nh;
	return parse_l4(c, p);
}

/* An inner IP packet at c->pos; its version picks the path. */
static __always_inline int parse_inner(struct cursor *c, struct pkt *p, void *data)
{
	__u8 *v = c->pos;

	if (!HAS(c, 1) || (void *)(v + 1) > c->end)
		return R_DROP_MALFORMED;
	p->inner_off = c->pos - data;
	switch (*v >> 4) {
	case 4:
		return parse_inner_v4(c, p);
	case 6:
		p->inner_v6 = 1;
		return parse_inner_v6(c, p);
	}
	return R_DROP_MALFORMED;
}

#endif
