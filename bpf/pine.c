//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pine-upf XDP datapath: per-PINE enforcement on GTP-U.
 *
 *   xdp_n3: uplink, GTP-U from the gNB -> decapsulate -> route to N6
 *   xdp_n6: downlink, IP from the data network -> encapsulate -> route to N3
 *
 * Both are default deny: a packet of a session that no PINE rule allows is
 * dropped. The floor programs run the same code with the enforcement
 * compiled out, so benchmarks can show what enforcement costs.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "parsing.h"
#include "csum.h"
#include "gtpu.h"
#include "lookup.h"
#include "qos.h"
#include "forward.h"
#include "stats.h"

enum mode {
	MODE_ENFORCE,
	MODE_FLOOR_PARSE,   /* F1: same parse, then XDP_DROP */
	MODE_FLOOR_FORWARD, /* F2: same parse and forwarding, no lookups */
};

/* Emit the enums Go needs into BTF; bpf2go -type reads them from there. */
struct go_types {
	enum dir dir;
	enum reason reason;
	enum event_stat event_stat;
	enum action action;
	enum level level;
	enum flags flags;
	struct deny_event event;
};
const struct go_types *unused_go_types __attribute__((unused));

/* F2's downlink tunnel, since F2 has no rule to take it from. In .data,
 * not .rodata: a const struct would be folded by the compiler. */
struct rule floor_rule = { .action = ACT_FORWARD };

/* After a verdict on a known session: count it, tell the control plane. */
static __always_inline int session_finish(__u32 sid, const struct pkt *p, __u32 dir, int reason)
{
	session_count(sid, dir, reason, p->inner_len);
	return finish(p, dir, reason);
}

static __always_inline int process_n3(struct xdp_md *ctx, const enum mode mode)
{
	void *data = (void *)(long)ctx->data;
	struct cursor c = { .pos = data, .end = (void *)(long)ctx->data_end };
	struct pkt p = {};
	struct session *s = 0;
	struct rule *r;
	__u32 sid = 0, *sidp;
	__be16 eth_proto;
	__u8 type = 0, flags;
	int ret;

	c.limit = c.end;
	p.frame_len = c.end - data;

	ret = parse_eth(&c, &eth_proto);
	if (ret != CONTINUE)
		goto out;
	ret = parse_outer_gtp(&c, eth_proto, &p, &type);
	if (ret != CONTINUE)
		goto out;
	if (type != GTP_TYPE_GPDU) {
		ret = R_PASS_CONTROL;
		goto out;
	}
	flags = *(__u8 *)(c.pos - sizeof(struct gtphdr)); /* in bounds: just parsed */

	if (mode == MODE_ENFORCE) {
		sidp = bpf_map_lookup_elem(&teids, &p.teid);
		if (!sidp) {
			ret = R_DROP_UNKNOWN_TEID;
			goto out;
		}
		sid = *sidp;
		s = bpf_map_lookup_elem(&sessions, &sid);
		if (!s || !s->flags) { /* removed meanwhile */
			s = 0;
			ret = R_DROP_UNKNOWN_TEID;
			goto out;
		}
	}

	ret = parse_gtp_ext(&c, flags, &p);
	if (ret != CONTINUE)
		goto done;
	ret = parse_inner(&c, &p, data);
	if (ret != CONTINUE)
		goto done;
	if (mode == MODE_FLOOR_PARSE)
		return XDP_DROP;

	if (mode == MODE_ENFORCE) {
		if (!source_allowed(s, &p)) {
			ret = R_DROP_SPOOFED;
			deny_event(sid, &p, DIR_UL, ret, p.src, p.sport);
			goto done;
		}
		r = rule_lookup(sid, s, DIR_UL, &p, p.src, p.sport);
		if (!r) {
			ret = R_DROP_NO_RULE;
			deny_event(sid, &p, DIR_UL, ret, p.src, p.sport);
			goto done;
		}
		if (r->action != ACT_FORWARD) {
			ret = R_DROP_ACTION;
			goto done;
		}
	}

	/* Policing first: TTL-expired packets of a PINE are its traffic too. */
	if (mode == MODE_ENFORCE) {
		ret = qos_apply(r, p.inner_len);
		if (ret != CONTINUE)
			goto done;
	}
	ret = gtp_decap(ctx, &p);
	if (ret != CONTINUE)
		goto done;
	if (p.ttl <= 1) {
		ret = R_PASS_TTL; /* decapsulated: the kernel answers the PINE */
		goto done;
	}
	ret = fib_forward(ctx, p.inner_v6, 1, cfg_fib_fallback_pass);
	if (mode == MODE_ENFORCE && ret == R_FORWARD)
		rule_count(r->rule_id, p.inner_len);
done:
	if (mode == MODE_ENFORCE && s)
		return session_finish(sid, &p, DIR_UL, ret);
out:
	if (mode != MODE_ENFORCE)
		return reason_action(ret);
	return finish(&p, DIR_UL, ret);
}

static __always_inline int process_n6(struct xdp_md *ctx, const enum mode mode)
{
	void *data = (void *)(long)ctx->data;
	struct cursor c = { .pos = data, .end = (void *)(long)ctx->data_end };
	struct pkt p = {};
	struct session *s = 0;
	const struct rule *r = &floor_rule;
	__u32 sid = 0, *sidp;
	__be16 eth_proto;
	__u8 *v;
	int ret;

	c.limit = c.end;
	p.frame_len = c.end - data;

	ret = parse_eth(&c, &eth_proto);
	if (ret != CONTINUE)
		goto out;
	if (eth_proto != bpf_htons(ETH_P_IP) && eth_proto != bpf_htons(ETH_P_IPV6)) {
		ret = R_PASS_OTHER;
		goto out;
	}
	v = c.pos;
	if ((void *)(v + 1) > c.end) {
		ret = R_DROP_MALFORMED;
		goto out;
	}
	if ((*v >> 4) != (eth_proto == bpf_htons(ETH_P_IP) ? 4 : 6)) {
		ret = R_DROP_MALFORMED;
		goto out;
	}
	ret = parse_inner(&c, &p, data);
	if (ret != CONTINUE)
		goto out;
	if (mode == MODE_FLOOR_PARSE)
		return XDP_DROP;

	if (mode == MODE_ENFORCE) {
		sidp = session_by_ue(&p);
		if (!sidp) {
			ret = R_PASS_OTHER;
			goto out;
		}
		sid = *sidp;
		s = bpf_map_lookup_elem(&sessions, &sid);
		if (!s || !s->flags) { /* removed meanwhile */
			s = 0;
			ret = R_PASS_OTHER;
			goto out;
		}
		r = rule_lookup(sid, s, DIR_DL, &p, p.dst, p.dport);
		if (!r) {
			ret = R_DROP_NO_RULE;
			deny_event(sid, &p, DIR_DL, ret, p.dst, p.dport);
			goto done;
		}
		if (r->action != ACT_FORWARD) {
			ret = R_DROP_ACTION;
			goto done;
		}
	}

	if (mode == MODE_ENFORCE) {
		ret = qos_apply(r, p.inner_len);
		if (ret != CONTINUE)
			goto done;
	}
	if (p.ttl <= 1) {
		ret = R_PASS_TTL;
		goto done;
	}
	ret = dec_inner_ttl(ctx, &p);
	if (ret != CONTINUE)
		goto done;
	ret = gtp_encap(ctx, &p, r);
	if (ret != CONTINUE)
		goto done;
	/* No fallback: the kernel drops a packet from its own N3 address as
	 * martian, so an encapsulated packet cannot be handed to it. */
	ret = fib_forward(ctx, r->flags & RULE_F_OUTER_V6, 0, 0);
	if (mode == MODE_ENFORCE && ret == R_FORWARD)
		rule_count(r->rule_id, p.inner_len);
done:
	if (mode == MODE_ENFORCE && s)
		return session_finish(sid, &p, DIR_DL, ret);
out:
	if (mode != MODE_ENFORCE)
		return reason_action(ret);
	return finish(&p, DIR_DL, ret);
}

SEC("xdp")
int xdp_n3(struct xdp_md *ctx)
{
	return process_n3(ctx, MODE_ENFORCE);
}

SEC("xdp")
int xdp_n6(struct xdp_md *ctx)
{
	return process_n6(ctx, MODE_ENFORCE);
}

SEC("xdp")
int xdp_n3_floor_parse(struct xdp_md *ctx)
{
	return process_n3(ctx, MODE_FLOOR_PARSE);
}

SEC("xdp")
int xdp_n3_floor_forward(struct xdp_md *ctx)
{
	return process_n3(ctx, MODE_FLOOR_FORWARD);
}

SEC("xdp")
int xdp_n6_floor_parse(struct xdp_md *ctx)
{
	return process_n6(ctx, MODE_FLOOR_PARSE);
}

SEC("xdp")
int xdp_n6_floor_forward(struct xdp_md *ctx)
{
	return process_n6(ctx, MODE_FLOOR_FORWARD);
}

/* Baseline for single-run timing: what a run costs with no work. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
