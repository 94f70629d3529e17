//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The end-to-end benchmark's traffic programs, separate from the datapath:
 *
 *   xdp_gen:      run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES;
 *                 writes this CPU's frame template over the (recycled) page,
 *                 varies the PINE port (every deny_every-th frame a port
 *                 without rule: a flood of unauthorized PINE traffic at the
 *                 same packet rate), and returns XDP_TX, which the kernel
 *                 turns into a transmit on the context's ingress interface.
 *   xdp_sink:     on the data-network end: counts what arrived, drops it.
 *   xdp_redirect: the plain-redirect reference in pine-upf's place on N3:
 *                 no parsing, bpf_redirect to N6.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GEN_HDR_MAX 128 /* template bytes rewritten per frame */

struct gen_cfg {
	__u32 hdr_len;  /* bytes of hdr to write, a multiple of 8, <= GEN_HDR_MAX */
	__u32 port_off; /* offset of the 2-byte PINE port to vary; 0 = none */
	__u32 variants; /* the port runs through base_port .. base_port+variants-1 */
	__u16 base_port;
	__u16 denied_base; /* ports of a PINE without rule: the flood */
	__u32 deny_every;  /* 0: no flood; n: every n-th frame uses denied_base */
	__u32 pad;
	__u64 sent;     /* frames generated on this CPU */
	__u8 hdr[GEN_HDR_MAX];
};

/* One template per CPU: a generator thread pinned to a CPU sends that
 * CPU's traffic (authorized on one, a flood on another). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_cfg);
	__uint(max_entries, 1);
} gen_cfgs SEC(".maps");

struct sink_count {
	__u64 packets;
	__u64 bytes;
};

/* 0: every frame; 1: IPv4/IPv6 that is not GTP-U (what pine-upf's uplink
 * forward delivers); 2: GTP-U (what the plain redirect delivers); 3: the
 * rest (ARP ...). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sink_count);
	__uint(max_entries, 4);
} sink_counts SEC(".maps");

/* Where xdp_redirect sends every frame. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} redirect_ifindex SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct gen_cfg *c = bpf_map_lookup_elem(&gen_cfgs, &zero);
	if (!c)
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 n = c->hdr_len / 8;

	for (int i = 0; i < GEN_HDR_MAX / 8; i++) {
		if (i >= n)
			break;
		__u64 *dst = data + i * 8;
		if ((void *)(dst + 1) > end)
			return XDP_ABORTED;
		*dst = *(__u64 *)&c->hdr[i * 8];
	}
	__u32 off = c->port_off;
	if (off && c->variants) {
		if (off > GEN_HDR_MAX - 2)
			return XDP_ABORTED;
		__u16 *port = data + off;
		if ((void *)(port + 1) > end)
			return XDP_ABORTED;
		__u16 base = c->base_port;
		if (c->deny_every && c->sent % c->deny_every == c->deny_every - 1)
			base = c->denied_base;
		*port = bpf_htons(base + (__u16)(c->sent % c->variants));
	}
	c->sent++;
	return XDP_TX;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 3;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) <= end) {
		__u8 *l3 = (void *)(eth + 1);
		if (eth->h_proto == bpf_htons(ETH_P_IP) && (void *)(l3 + 24) <= end) {
			__u16 dport = *(__u16 *)(l3 + 22);
			key = (l3[9] == 17 && dport == bpf_htons(2152)) ? 2 : 1;
		} else if (eth->h_proto == bpf_htons(ETH_P_IPV6) && (void *)(l3 + 44) <= end) {
			__u16 dport = *(__u16 *)(l3 + 42);
			key = (l3[6] == 17 && dport == bpf_htons(2152)) ? 2 : 1;
		}
	}
	__u64 len = end - data;
	__u32 all = 0;
	struct sink_count *c = bpf_map_lookup_elem(&sink_counts, &all);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	c = bpf_map_lookup_elem(&sink_counts, &key);
	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return XDP_DROP;
}

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u32 *ifindex = bpf_map_lookup_elem(&redirect_ifindex, &zero);
	if (!ifindex)
		return XDP_ABORTED;
	return bpf_redirect(*ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
