#!/usr/bin/env bash
# A short tour: the `pycni` command wires two network namespaces onto one
# bridge with a bridge + host-local + tuning chain, they ping each other,
# then everything is deleted. Runs as root; touches nothing outside its
# own temp dir, namespaces and bridge (all removed on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
PYCNI=${PYCNI:-.venv/bin/pycni}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }

id=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d /tmp/pycni-demo.XXXXXX)
br="pcdemo$id"
ns_a="pycni-demo-a-$id"
ns_b="pycni-demo-b-$id"

cleanup() {
  for ns in "$ns_a" "$ns_b"; do
    [ -e "/run/netns/$ns" ] && "$PYCNI" del demonet "/run/netns/$ns" 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link delete "$br" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/net.d"
cat > "$work/net.d/10-demonet.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "demonet",
  "plugins": [
    {"type": "bridge", "bridge": "$br", "isGateway": true,
     "ipam": {"type": "host-local", "dataDir": "$work/ipam",
              "ranges": [[{"subnet": "10.250.7.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "tuning", "mtu": 1400}
  ]
}
JSON
export NETCONFPATH="$work/net.d" CNI_PATH="${CNI_PATH:-/usr/lib/cni}" CNI_CACHE_DIR="$work/cache"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "pycni version; the plugins on CNI_PATH=$CNI_PATH"
"$PYCNI" version
"$PYCNI" version bridge

ip netns add "$ns_a"; ip netns add "$ns_b"
step "pycni add demonet /run/netns/$ns_a"
"$PYCNI" add demonet "/run/netns/$ns_a"
"$PYCNI" add demonet "/run/netns/$ns_b" >/dev/null
ip_b=$(ip -n "$ns_b" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)

step "inside $ns_a"
ip -n "$ns_a" -br addr show dev eth0
ip -n "$ns_a" route

step "ping from $ns_a to $ns_b ($ip_b)"
ip netns exec "$ns_a" ping -c 3 -W 2 "$ip_b"

step "pycni check, status"
"$PYCNI" check demonet "/run/netns/$ns_a" && echo "check: ok"
"$PYCNI" status demonet && echo "status: ok"

step "pycni del (twice: DEL is idempotent)"
"$PYCNI" del demonet "/run/netns/$ns_a"
"$PYCNI" del demonet "/run/netns/$ns_a" && echo "second del: ok"
ip -n "$ns_a" -br link
echo "addresses still reserved: $(ls "$work/ipam/demonet" | grep -c '^10\.' || true) (only $ns_b's)"

step "pycni gc: $ns_b's namespace disappears, gc releases its address"
ip netns delete "$ns_b"
"$PYCNI" gc demonet
echo "addresses still reserved: $(ls "$work/ipam/demonet" | grep -c '^10\.' || true)"
step "done"
