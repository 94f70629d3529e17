#!/usr/bin/env bash
# pfcp-dissect-check.sh — capture the SMF simulator's PFCP traffic on
# loopback and require Wireshark's PFCP dissector to decode every message
# with no malformed field and no error-severity expert info.
#
# usage: scripts/pfcp-dissect-check.sh [--upf HOST:PORT] [--out DIR] [-- SCENARIO FLAGS...]
#
#   --upf   a UPF listening on loopback (default: start `pine-smf-sim fake-upf`
#           on 127.0.0.1:$PORT, PORT default 18805)
#   --out   where to keep the capture and the tshark -V text (default: a temp dir)
#   after --, flags for `pine-smf-sim scenario` replacing the default PINEs
#
# Needs tshark (DEBIAN_FRONTEND=noninteractive apt-get install -y tshark) and
# the right to capture on lo (root or the wireshark group). Exits 0 when the
# dissection is clean, 1 when it is not, 2 when it could not run. The Go test
# TestTsharkDissect in pfcp/smfsim does the same in-process (skips without
# tshark, fails under CI=true).
set -euo pipefail

cd "$(dirname "$0")/.."
UPF=""
OUT=""
PORT="${PORT:-18805}"
while [ $# -gt 0 ]; do
	case "$1" in
	--upf) UPF="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	--) shift; break ;;
	*) echo "unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v tshark >/dev/null || { echo "tshark not installed" >&2; exit 2; }
[ -n "$OUT" ] || OUT="$(mktemp -d)"
mkdir -p "$OUT"
BIN="$OUT/pine-smf-sim"
go build -o "$BIN" ./cmd/pine-smf-sim

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ -z "$UPF" ]; then
	UPF="127.0.0.1:$PORT"
	"$BIN" fake-upf --listen "$UPF" >"$OUT/fake-upf.log" 2>&1 &
	PIDS+=($!)
else
	PORT="${UPF##*:}"
fi

CAP="$OUT/pfcp.pcapng"
tshark -i lo -f "udp port $PORT" -w "$CAP" -a duration:120 2>"$OUT/tshark-capture.log" &
TSPID=$!
PIDS+=($TSPID)
for _ in $(seq 100); do grep -q "Capturing on" "$OUT/tshark-capture.log" && break; sleep 0.1; done
grep -q "Capturing on" "$OUT/tshark-capture.log" || { cat "$OUT/tshark-capture.log" >&2; exit 2; }
sleep 1 # dumpcap says "Capturing on" slightly before the filter is live

if [ $# -eq 0 ]; then
	set -- --default-rule --ue 10.45.0.2 --ue6-prefix 2001:db8:1::/56 --gnb 127.0.0.3 --gnb-teid 0x100 --dnn internet \
		--pine id=1,addr=10.45.0.2,proto=udp,ports=5000-5009,mbr-ul=1M,mbr-dl=2M,threshold=1000000 \
		--pine id=2,addr=10.45.0.2,proto=tcp,ports=8080 \
		--pine id=3,addr=2001:db8:1:0:aa::2,proto=ip,gate=closed \
		--hold 300ms
fi
RC=0
"$BIN" --upf "$UPF" scenario "$@" | tee "$OUT/scenario.txt" || RC=1
"$BIN" --upf "$UPF" --node-id smf.example.org heartbeat | tee -a "$OUT/scenario.txt" || RC=1
sleep 0.5
kill -INT "$TSPID"; wait "$TSPID" 2>/dev/null || true

tshark -r "$CAP" -d "udp.port==$PORT,pfcp" -V >"$OUT/pfcp-dissect.txt" 2>/dev/null
tshark -r "$CAP" -d "udp.port==$PORT,pfcp" -T fields -E separator='|' \
	-e frame.number -e pfcp.msg_type -e _ws.malformed -e _ws.expert.severity -e _ws.expert.message \
	2>/dev/null >"$OUT/pfcp-fields.txt"
FRAMES=$(wc -l <"$OUT/pfcp-fields.txt")
PFCP=$(awk -F'|' '$2!=""' "$OUT/pfcp-fields.txt" | wc -l)
MALFORMED=$(awk -F'|' '$3!=""' "$OUT/pfcp-fields.txt")
# PI_ERROR is 0x00800000 (8388608).
ERRORS=$(awk -F'|' '$4 ~ /8388608|0x00800000|[Ee]rror/' "$OUT/pfcp-fields.txt")
OTHER=$(awk -F'|' '$4!="" && $4 !~ /8388608|0x00800000|[Ee]rror/' "$OUT/pfcp-fields.txt")

echo "capture: $CAP ($FRAMES frames, $PFCP decoded as PFCP); dissection: $OUT/pfcp-dissect.txt"
echo "message types: $(awk -F'|' '$2!=""{print $2}' "$OUT/pfcp-fields.txt" | sort -n | uniq -c | awk '{printf "%s×%s ", $2, $1}')"
[ -z "$OTHER" ] || { echo "expert info (not errors):"; echo "$OTHER"; }
if [ "$FRAMES" -eq 0 ] || [ "$FRAMES" -ne "$PFCP" ]; then echo "FAIL: not every frame decoded as PFCP"; RC=1; fi
if [ -n "$MALFORMED" ]; then echo "FAIL: malformed:"; echo "$MALFORMED"; RC=1; fi
if [ -n "$ERRORS" ]; then echo "FAIL: expert errors:"; echo "$ERRORS"; RC=1; fi
[ $RC -eq 0 ] && echo "OK: no malformed fields, no error-severity expert info"
exit $RC
