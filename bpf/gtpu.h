/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* GTP-U v1 (TS 29.281): outer headers, G-PDU parsing, encapsulation. */
#ifndef PINE_GTPU_H
#define PINE_GTPU_H

#include "parsing.h"
#include "csum.h"
#include "maps.h"

struct gtphdr {
	__u8 flags;
	__u8 type;
	__be16 length; /* bytes after the mandatory 8 */
	__be32 teid;
};

/* What downlink encapsulation writes after the outer UDP header. */
struct gtp_psc_hdr {
	struct gtphdr gtp;
	__be16 seq;
	__u8 npdu;
	__u8 next;     /* GTP_EXT_PSC */
	__u8 ext_len;  /* 1: four bytes */
	__u8 pdu_type; /* 0: DL PDU SESSION INFORMATION */
	__u8 qfi;
	__u8 ext_next; /* 0: no more */
};

volatile const __be32 cfg_n3_v4 = 0; /* outer source for IPv4 encapsulation */
volatile const __u32 cfg_n3_v6[4] = {}; /* outer source for IPv6 encapsulation */

/*
 * Outer IPv4/IPv6 + UDP to port 2152 + the 8-byte GTP-U header. Leaves the
 * cursor after it with limit at the end of the GTP-U message, *type set.
 */
static __always_inline int parse_outer_gtp(struct cursor *c, __be16 eth_proto, struct pkt *p,
					   __u8 *type)
{
	struct udphdr *udp;
	struct gtphdr *gh;
	__u32 l3_payload, udp_len, gtp_len;

	if (eth_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = c->pos;
		__u32 hl, tot;

		if (!HAS(c, sizeof(*ip)))
			return R_DROP_MALFORMED;
		hl = ip->ihl * 4;
		tot = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || hl < sizeof(*ip) || tot < hl || !HAS(c, tot) || !HAS(c, hl))
			return R_DROP_MALFORMED;
		if (ip->protocol != IPPROTO_UDP)
			return R_PASS_OTHER;
		if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset */
			return R_PASS_FRAGMENT;
		c->limit = c->pos + tot;
		c->pos += hl;
		l3_payload = tot - hl;
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = c->pos;

		if (!HAS(c, sizeof(*ip6)))
			return R_DROP_MALFORMED;
		l3_payload = bpf_ntohs(ip6->payload_len);
		if (ip6->version != 6 || !HAS(c, sizeof(*ip6) + l3_payload))
			return R_DROP_MALFORMED;
		if (ip6->nexthdr != IPPROTO_UDP)
			return R_PASS_OTHER;
		c->limit = c->pos + sizeof(*ip6) + l3_payload;
		c->pos += sizeof(*ip6);
	} else {
		return R_PASS_OTHER;
	}

	udp = c->pos;
	if (!HAS(c, sizeof(*udp)))
		return R_DROP_MALFORMED;
	if (udp->dest != bpf_htons(GTPU_PORT))
		return R_PASS_OTHER;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) || udp_len > l3_payload)
		return R_DROP_MALFORMED;
	c->limit = c->pos + udp_len;
	c->pos += sizeof(*udp);

	gh = c->pos;
	if (!HAS(c, sizeof(*gh)))
		return R_DROP_MALFORMED;
	if ((gh->flags & 0xf0) != GTP_FLAGS_V1_PT)
		return R_DROP_MALFORMED;
	*type = gh->type;
	if (gh->type != GTP_TYPE_GPDU)
		return CONTINUE;
	gtp_len = bpf_ntohs(gh->length);
	if (!HAS(c, sizeof(*gh) + gtp_len))
		return R_DROP_MALFORMED;
	p->teid = bpf_ntohl(gh->teid);
	c->limit = c->pos + sizeof(*gh) + gtp_len;
	c->pos += sizeof(*gh);
	return CONTINUE;
}

/* Optional fields and the extension header chain of a G-PDU; the QFI from
 * a PDU Session Container. flags is the first GTP-U header byte. */
static __always_inline int parse_gtp_ext(struct cursor *c, __u8 flags, struct pkt *p)
{
	__u8 *opt = c->pos;
	__u8 next;

	if (!(flags & GTP_FLAGS_OPT))
		return CONTINUE;
	if (!HAS(c, 4) || (void *)(opt + 4) > c->end)
		return R_DROP_MALFORMED;
	next = (flags & GTP_FLAG_E) ? opt[3] : 0;
	c->pos += 4;

#pragma unroll
	for (int i = 0; i < MAX_GTP_EXT; i++) {
		__u8 *e = c->pos;
		__u32 len;

		if (!next)
			return CONTINUE;
		if (!HAS(c, 4) || (void *)(e + 4) > c->end)
			return R_DROP_MALFORMED;
		len = e[0] * 4;
		if (!len || !HAS(c, len))
			return R_DROP_MALFORMED;
		if (next == GTP_EXT_PSC)
			p->qfi = e[2] & 0x3f;
		c->pos += len;
		e = c->pos - 1;
		if ((void *)(e + 1) > c->end)
			return R_DROP_MALFORMED;
		next = *e;
	}
	return next ? R_DROP_MALFORMED : CONTINUE;
}

/* The outer UDP checksum, required over IPv6, summed in chunks because
 * bpf_csum_diff takes at most 512 bytes. */
static __always_inline int udp6_csum(struct xdp_md *ctx, __u32 udp_off, __u32 udp_len,
				     struct ipv6hdr *ip6, __u16 *out)
{
	struct {
		struct in6_addr src, dst;
		__be32 len;
		__u8 zero[3];
		__u8 nh;
	} ph = {};
	__u32 zero = 0, sum;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!s)
		return R_DROP_MALFORMED;
	ph.src = ip6->saddr;
	ph.dst = ip6->daddr;
	ph.len = bpf_htonl(udp_len);
	ph.nh = IPPROTO_UDP;
	sum = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);

#pragma unroll
	for (int i = 0; i < CSUM_CHUNKS; i++) {
		__u32 off = i * CSUM_CHUNK, n;

		if (off >= udp_len)
			break;
		n = udp_len - off;
		if (n > CSUM_CHUNK)
			n = CSUM_CHUNK;
		n = ((n - 1) & (CSUM_CHUNK - 1)) + 1; /* [1, 512] for the verifier */
		if (bpf_xdp_load_bytes(ctx, udp_off + off, s->buf, n))
			return R_DROP_MALFORMED;
		/* Zero-pad to a multiple of 4; chunks start at even offsets. */
		s->buf[n] = 0;
		s->buf[n + 1] = 0;
		s->buf[n + 2] = 0;
		sum = bpf_csum_diff(0, 0, (__be32 *)s->buf, (n + 3) & ~3U, sum);
	}
	if (udp_len > CSUM_CHUNK * CSUM_CHUNKS)
		return R_DROP_MALFORMED;
	*out = csum_fold(sum);
	if (!*out)
		*out = 0xffff;
	return CONTINUE;
}

/*
 * Replace everything before the inner IP header with Ethernet + outer IP +
 * UDP + GTP-U + PDU Session Container. Ingress MACs are kept until the FIB
 * lookup replaces them, so a packet passed to the kernel is still ours.
 */
static __always_inline int gtp_encap(struct xdp_md *ctx, struct pkt *p, const struct rule *r)
{
	int v6 = r->flags & RULE_F_OUTER_V6;
	__u32 l3 = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	__u32 hdr = l3 + sizeof(struct udphdr) + sizeof(struct gtp_psc_hdr);
	__u32 udp_len = sizeof(struct udphdr) + sizeof(struct gtp_psc_hdr) + p->inner_len;
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 macs[12];
	struct udphdr *udp;
	struct gtp_psc_hdr *g;
	struct peer *peer = bpf_map_lookup_elem(&peers, &r->peer);

	if (!peer) /* the enforcer never names a missing peer */
		return R_DROP_NO_ROUTE;
	if ((void *)(eth + 1) > end)
		return R_DROP_MALFORMED;
	__builtin_memcpy(macs, eth, 12);
	if (bpf_xdp_adjust_head(ctx, (int)p->inner_off - (int)sizeof(*eth) - (int)hdr))
		return R_DROP_MALFORMED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (data + sizeof(*eth) + sizeof(struct ipv6hdr) + sizeof(*udp) + sizeof(*g) > end)
		return R_DROP_MALFORMED;
	__builtin_memcpy(eth, macs, 12);

	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(udp_len);
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = OUTER_TTL;
#pragma unroll
		for (int i = 0; i < 4; i++) /* word by word: a volatile const must be read */
			ip6->saddr.in6_u.u6_addr32[i] = cfg_n3_v6[i];
		__builtin_memcpy(&ip6->daddr, peer->addr, 16);
		udp = (void *)(ip6 + 1);
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + udp_len);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = OUTER_TTL;
		ip->protocol = IPPROTO_UDP;
		ip->check = 0;
		ip->saddr = cfg_n3_v4;
		__builtin_memcpy(&ip->daddr, peer->addr + 12, 4);
		ip->check = ipv4_csum(ip);
		udp = (void *)(ip + 1);
	}
	udp->source = bpf_htons(GTPU_PORT);
	udp->dest = bpf_htons(GTPU_PORT);
	udp->len = bpf_htons(udp_len);
	udp->check = 0;

	g = (void *)(udp + 1);
	g->gtp.flags = GTP_FLAGS_V1_PT | GTP_FLAG_E;
	g->gtp.type = GTP_TYPE_GPDU;
	g->gtp.length = bpf_htons(sizeof(*g) - sizeof(g->gtp) + p->inner_len);
	g->gtp.teid = bpf_htonl(r->teid);
	g->seq = 0;
	g->npdu = 0;
	g->next = GTP_EXT_PSC;
	g->ext_len = 1;
	g->pdu_type = 0;
	g->qfi = r->qfi & 0x3f;
	g->ext_next = 0;

	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u16 check;
		int ret = udp6_csum(ctx, sizeof(*eth) + sizeof(*ip6), udp_len, ip6, &check);

		if (ret != CONTINUE)
			return ret;
		/* The helper calls invalidated the packet pointers. */
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		udp = data + sizeof(*eth) + sizeof(*ip6);
		if ((void *)(udp + 1) > end)
			return R_DROP_MALFORMED;
		udp->check = check;
	}
	return CONTINUE;
}

/* Strip everything before the inner IP header; keep the ingress MACs. */
static __always_inline int gtp_decap(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 macs[12];

	if ((void *)(eth + 1) > end)
		return R_DROP_MALFORMED;
	__builtin_memcpy(macs, eth, 12);
	if (bpf_xdp_adjust_head(ctx, (int)p->inner_off - (int)sizeof(*eth)))
		return R_DROP_MALFORMED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return R_DROP_MALFORMED;
	__builtin_memcpy(eth, macs, 12);
	eth->h_proto = p->inner_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	return CONTINUE;
}

#endif
