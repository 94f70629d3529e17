/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters and rate-limited deny events. */
#ifndef PINE_STATS_H
#define PINE_STATS_H

#include "parsing.h"
#include "maps.h"

volatile const __u32 cfg_events_per_sec = 16; /* deny events per session per second */
volatile const __u32 cfg_max_rules = 1000000;  /* rule_stats stride between CPUs */

static __always_inline void counter_add(struct counter *c, __u64 bytes)
{
	c->packets++;
	c->bytes += bytes;
}

static __always_inline int reason_action(int reason)
{
	if (reason == R_FORWARD)
		return XDP_REDIRECT;
	if (reason < R_DROP_UNKNOWN_TEID)
		return XDP_PASS;
	return XDP_DROP;
}

/* Count the packet under its reason and return the XDP action. */
static __always_inline int finish(const struct pkt *p, __u32 dir, int reason)
{
	__u32 key = dir * R_MAX + reason;
	struct counter *c = bpf_map_lookup_elem(&stats, &key);

	if (c)
		counter_add(c, p->frame_len);
	return reason_action(reason);
}

/* A forwarded packet's usage, on this CPU's counter of the rule. */
static __always_inline void rule_count(__u32 rule_id, __u32 bytes)
{
	__u32 key = bpf_get_smp_processor_id() * cfg_max_rules + rule_id;
	struct counter *c = bpf_map_lookup_elem(&rule_stats, &key);

	if (c)
		counter_add(c, bytes);
}

static __always_inline void session_count(__u32 sid, __u32 dir, int reason, __u32 bytes)
{
	struct sess_stats *s = bpf_map_lookup_elem(&session_stats, &sid);

	if (!s)
		return;
	if (reason == R_FORWARD)
		counter_add(&s->fwd[dir & 1], bytes);
	else if (reason >= R_DROP_UNKNOWN_TEID)
		counter_add(&s->drop[dir & 1], bytes);
}

static __always_inline void event_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&event_stats, &which);

	if (v)
		(*v)++;
}

/* An unauthorized PINE was dropped: tell the control plane, at most
 * cfg_events_per_sec times per session, CPU and second. The coarse clock is
 * cheap and a second's window needs no better. */
static __always_inline void deny_event(__u32 sid, const struct pkt *p, __u32 dir, int reason,
				       const __u8 *addr, __u16 port)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	__u64 window = now / NSEC_PER_SEC;
	struct ev_limit *l = bpf_map_lookup_elem(&event_limits, &sid);
	struct deny_event *e;

	if (!l)
		return;
	if (l->window != window) {
		l->window = window;
		l->count = 0;
	}
	if (l->count >= cfg_events_per_sec) {
		event_count(EV_SUPPRESSED);
		return;
	}
	l->count++;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		event_count(EV_LOST);
		return;
	}
	e->ts_ns = now;
	e->sid = sid;
	e->teid = p->teid;
	__builtin_memcpy(e->addr, addr, 16);
	e->port = p->has_ports ? port : 0;
	e->proto = p->proto;
	e->reason = reason;
	e->dir = dir;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	bpf_ringbuf_submit(e, 0);
	event_count(EV_SENT);
}

#endif
