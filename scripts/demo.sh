#!/usr/bin/env bash
# pine-upf demo, as root on a fresh Linux host (kernel 6.x, Go, iproute2):
#
#   gnb netns  [gnb0 192.0.2.2] ==veth== [n3 192.0.2.1] upf netns [n6 198.51.100.1] ==veth== [dn0 198.51.100.2] dn netns
#                GTP-U sender/receiver      pine-upf (XDP on n3 and n6, PFCP, metrics)      UDP/TCP echo 203.0.113.10:7
#
# An SMF (pfcp/smfsim and pinauth, inside pine-demo) establishes a PEGC
# session; PINE A authenticates with EAP-MD5 against a real DN-AAA
# (FreeRADIUS, deploy/freeradius) and gets its rules, PINE B fails; the gNB
# sends for both after every step; then the DN-AAA revokes A with a RADIUS
# Disconnect-Request. Everything it creates is removed on exit, Ctrl-C or
# failure.
set -euo pipefail

cd "$(dirname "$0")/.."
SUFFIX="$$"
NS_GNB="pine-demo-gnb-$SUFFIX"
NS_UPF="pine-demo-upf-$SUFFIX"
NS_DN="pine-demo-dn-$SUFFIX"
WORK="$(mktemp -d /tmp/pine-demo.XXXXXX)"
# `ip netns exec` remounts /sys, hiding /sys/fs/bpf: pin on a bpffs of our own.
BPFFS="/run/pine-demo-bpffs-$SUFFIX"
PIN_DIR="$BPFFS/pine-upf"
BIN="$WORK/bin"
PIDS=()

log() { printf '== %s\n' "$*"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	for ns in "$NS_GNB" "$NS_UPF" "$NS_DN"; do
		ip netns del "$ns" 2>/dev/null || true # its veth ends go with it
	done
	if mountpoint -q "$BPFFS" 2>/dev/null; then
		umount "$BPFFS" || true
	fi
	rmdir "$BPFFS" 2>/dev/null || true
	if [ $rc -ne 0 ] && [ -f "$WORK/pine-upf.log" ]; then
		echo "--- pine-upf log (last 40 lines) ---"
		tail -n 40 "$WORK/pine-upf.log"
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates namespaces and loads XDP programs)" >&2; exit 1; }
command -v ip >/dev/null || { echo "demo: iproute2 (ip) is required" >&2; exit 1; }
if ! command -v freeradius >/dev/null; then
	log "installing FreeRADIUS (the demo's DN-AAA)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends freeradius >/dev/null
	systemctl disable --now freeradius >/dev/null 2>&1 || true
fi

log "building pine-upf and pine-demo"
mkdir -p "$BIN"
go build -o "$BIN/pine-upf" ./cmd/pine-upf
go build -o "$BIN/pine-demo" ./cmd/pine-demo

log "bpffs at $BPFFS"
mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS"

log "namespaces $NS_GNB <-> $NS_UPF <-> $NS_DN"
for ns in "$NS_GNB" "$NS_UPF" "$NS_DN"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
ip link add n3 netns "$NS_UPF" type veth peer name gnb0 netns "$NS_GNB"
ip link add n6 netns "$NS_UPF" type veth peer name dn0 netns "$NS_DN"
ip -n "$NS_UPF" addr add 192.0.2.1/24 dev n3
ip -n "$NS_UPF" addr add 198.51.100.1/24 dev n6
ip -n "$NS_GNB" addr add 192.0.2.2/24 dev gnb0
ip -n "$NS_DN" addr add 198.51.100.2/24 dev dn0
ip -n "$NS_DN" addr add 203.0.113.10/32 dev lo
for l in "$NS_UPF n3" "$NS_UPF n6" "$NS_GNB gnb0" "$NS_DN dn0"; do
	set -- $l
	ip -n "$1" link set "$2" up
done
# upf: forwarding on, the DN subnet via the dn end, neighbours resolved
# statically (the XDP FIB lookup wants them; encapsulated downlink packets
# have no kernel fallback).
ip netns exec "$NS_UPF" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NS_UPF" route add 203.0.113.0/24 via 198.51.100.2 dev n6
GNB_MAC=$(ip -n "$NS_GNB" -j link show gnb0 | sed -n 's/.*"address":"\([0-9a-f:]*\)".*/\1/p')
DN_MAC=$(ip -n "$NS_DN" -j link show dn0 | sed -n 's/.*"address":"\([0-9a-f:]*\)".*/\1/p')
ip -n "$NS_UPF" neigh replace 192.0.2.2 lladdr "$GNB_MAC" dev n3 nud permanent
ip -n "$NS_UPF" neigh replace 198.51.100.2 lladdr "$DN_MAC" dev n6 nud permanent
# dn: the UE pool is behind the UPF.
ip -n "$NS_DN" route add 10.45.0.0/16 via 198.51.100.1 dev dn0

log "echo server in $NS_DN (udp and tcp 203.0.113.10:7)"
ip netns exec "$NS_DN" "$BIN/pine-demo" echo --listen 203.0.113.10:7 >"$WORK/echo.log" 2>&1 &
PIDS+=($!)

log "pine-upf in $NS_UPF"
cat >"$WORK/pine-upf.yaml" <<YAML
n3: {interface: n3, ipv4: 192.0.2.1}
n6: {interface: n6, ipv4: 198.51.100.1}
xdp_mode: generic        # veths; native needs driver support on real NICs
pfcp:
  listen: 127.0.0.1:8805
  node_id: upf.demo
  allowed_peers: [127.0.0.0/8]
maps: {sessions: 1024, rules: 16384, qers: 1024}
pin_dir: $PIN_DIR
state_dir: $WORK/state
metrics: {listen: "127.0.0.1:9464"}
log: {level: info, format: text}
YAML
ip netns exec "$NS_UPF" "$BIN/pine-upf" run --config "$WORK/pine-upf.yaml" >"$WORK/pine-upf.log" 2>&1 &
PIDS+=($!)

log "SMF + gNB scenario"
echo
ip netns exec "$NS_UPF" "$BIN/pine-demo" scenario --gnb-netns "$NS_GNB" \
	--pfcp 127.0.0.1:8805 --metrics http://127.0.0.1:9464
echo
log "pine-upf deny log lines"
grep -E 'msg=deny|deny events suppressed' "$WORK/pine-upf.log" || true
log "done; cleaning up"
