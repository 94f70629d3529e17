/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Maps. Capacities here are defaults; the enforcer sets them on the spec. */
#ifndef PINE_MAPS_H
#define PINE_MAPS_H

#include "consts.h"
#include "structs.h"

/*
 * Session by sid; flags 0 marks a free slot. Written in place, so the
 * enforcer changes one field group per update (level masks widen, then the
 * generation byte flips, then the masks narrow): a reader racing a write
 * sees each byte old or new, and every mix of them is safe.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct session);
	__uint(max_entries, 100000);
} sessions SEC(".maps");

/* UL: local TEID (host order) -> sid. Several TEIDs may name one session.
 * Slab-backed like rules, for the same TLB reason. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 200000);
} teids SEC(".maps");

/* DL: UE IPv4 address (network order) -> sid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 100000);
} ue_v4 SEC(".maps");

/* DL: UE IPv6 prefix -> sid. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ue6_key);
	__type(value, __u32);
	__uint(max_entries, 100000);
} ue_v6 SEC(".maps");

/* PINE rule entries: (session, generation, dir, level, key) -> winner.
 * No prealloc: elements come from slab memory, which the kernel maps with
 * huge pages; a preallocated table is vmalloc'ed in 4 KiB pages and costs
 * a TLB miss per random lookup at a million rules. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct rule);
	__uint(max_entries, 1000000);
} rules SEC(".maps");

/*
 * Usage per PINE rule, by cpu * cfg_max_rules + rule_id: per-CPU counters
 * laid out by hand. A PERCPU_ARRAY costs a pointer per rule and a second
 * memory access per packet; CPU-major order keeps CPUs off each other's
 * cache lines. Sized MaxRules * possible CPUs by the enforcer.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* the control plane reads usage without syscalls */
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, 2000000);
} rule_stats SEC(".maps");

/* Tunnel peer addresses, by index; index 0 is never used. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct peer);
	__uint(max_entries, 4096);
} peers SEC(".maps");

/* QoS enforcement rules, by index; index 0 is never used. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct qer);
	__uint(max_entries, 65536);
} qers SEC(".maps");

/* Usage and drops per session, by sid. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct sess_stats);
	__uint(max_entries, 100000);
} session_stats SEC(".maps");

/* Packets and ingress bytes by dir * R_MAX + reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(max_entries, DIR_MAX * R_MAX);
} stats SEC(".maps");

/* Deny events sent, suppressed and lost, by enum event_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, EV_MAX);
} event_stats SEC(".maps");

/* Per-session deny-event budget, by sid, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ev_limit);
	__uint(max_entries, 100000);
} event_limits SEC(".maps");

/* Deny events for the control plane. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Staging for the IPv6 outer UDP checksum. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct scratch);
	__uint(max_entries, 1);
} scratch SEC(".maps");

#endif
