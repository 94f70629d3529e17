/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* QER gate and maximum bit rate. */
#ifndef PINE_QOS_H
#define PINE_QOS_H

#include "maps.h"

/*
 * Token bucket shared by all CPUs, under the QER's spin lock. Tokens are
 * byte-nanoseconds: refill is elapsed * rate exactly, never lost to
 * rounding however often packets arrive.
 */
static __always_inline int qer_apply(__u32 idx, __u32 len, __u64 now)
{
	struct qer *q;
	__u64 cost = (__u64)len * NSEC_PER_SEC;
	int ok;

	if (!idx)
		return CONTINUE;
	q = bpf_map_lookup_elem(&qers, &idx);
	if (!q || (q->flags & QER_F_GATE_CLOSED)) /* a missing QER fails closed */
		return R_DROP_GATE;
	if (!q->rate)
		return CONTINUE;

	bpf_spin_lock(&q->lock);
	if (now > q->last_ns) {
		__u64 elapsed = now - q->last_ns;

		if (elapsed >= q->fill_ns)
			q->tokens = q->cap;
		else if (q->tokens + elapsed * q->rate > q->cap)
			q->tokens = q->cap;
		else
			q->tokens += elapsed * q->rate;
		q->last_ns = now;
	}
	ok = q->tokens >= cost;
	if (ok)
		q->tokens -= cost;
	bpf_spin_unlock(&q->lock);
	return ok ? CONTINUE : R_DROP_RATE;
}

static __always_inline int qos_apply(const struct rule *r, __u32 len)
{
	__u64 now;
	int ret;

	if (!r->qer[0] && !r->qer[1])
		return CONTINUE;
	now = bpf_ktime_get_ns();
	ret = qer_apply(r->qer[0], len, now);
	if (ret != CONTINUE)
		return ret;
	return qer_apply(r->qer[1], len, now);
}

#endif
