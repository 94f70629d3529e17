/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Routing: FIB lookup, MAC rewrite, redirect. */
#ifndef PINE_FORWARD_H
#define PINE_FORWARD_H

#include "parsing.h"
#include "csum.h"

#define AF_INET 2
#define AF_INET6 10

/* Uplink: XDP_PASS the decapsulated packet when the kernel can still
 * deliver it (no neighbour entry yet, or it needs fragmenting); else such
 * packets are dropped. */
volatile const __u8 cfg_fib_fallback_pass = 1;

/*
 * Route the IP packet right after the Ethernet header. On success the MACs
 * are rewritten, the TTL decremented when dec_ttl (uplink: the packet routed
 * is the inner one) and the packet redirected. Without a neighbour, the
 * packet goes to the kernel when fallback, else it is dropped.
 */
static __always_inline int fib_forward(struct xdp_md *ctx, int v6, int dec_ttl, int fallback)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct bpf_fib_lookup f = {};
	long rc;

	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return R_DROP_MALFORMED;
		f.family = AF_INET6;
		f.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		f.l4_protocol = ip6->nexthdr;
		f.tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(f.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(f.ipv6_dst, &ip6->daddr, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return R_DROP_MALFORMED;
		f.family = AF_INET;
		f.tos = ip->tos;
		f.l4_protocol = ip->protocol;
		f.tot_len = bpf_ntohs(ip->tot_len);
		f.ipv4_src = ip->saddr;
		f.ipv4_dst = ip->daddr;
	}
	f.ifindex = ctx->ingress_ifindex;

	rc = bpf_fib_lookup(ctx, &f, sizeof(f), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH || rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return fallback ? R_PASS_FIB : R_DROP_NO_ROUTE;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return R_DROP_NO_ROUTE;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return R_DROP_MALFORMED;
	if (dec_ttl) {
		if (v6) {
			struct ipv6hdr *ip6 = (void *)(eth + 1);

			if ((void *)(ip6 + 1) > end)
				return R_DROP_MALFORMED;
			ip6->hop_limit--;
		} else {
			struct iphdr *ip = (void *)(eth + 1);

			if ((void *)(ip + 1) > end)
				return R_DROP_MALFORMED;
			ipv4_dec_ttl(ip);
		}
	}
	__builtin_memcpy(eth->h_dest, f.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f.smac, ETH_ALEN);
	bpf_redirect(f.ifindex, 0);
	return R_FORWARD;
}

/* Decrement the inner TTL / hop limit in place (downlink, before encap). */
static __always_inline int dec_inner_ttl(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 off = p->inner_off;
	void *ip;

	if (off > 64) /* Ethernet and VLAN tags only; bounds the verifier */
		return R_DROP_MALFORMED;
	ip = data + off;

	if (p->inner_v6) {
		struct ipv6hdr *ip6 = ip;

		if ((void *)(ip6 + 1) > end)
			return R_DROP_MALFORMED;
		ip6->hop_limit--;
	} else {
		struct iphdr *ip4 = ip;

		if ((void *)(ip4 + 1) > end)
			return R_DROP_MALFORMED;
		ipv4_dec_ttl(ip4);
	}
	return CONTINUE;
}

#endif
