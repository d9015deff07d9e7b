#!/usr/bin/env bash
# A multi-node cluster on this machine: `pycni lab` builds an underlay, an
# etcd and three nodes (network namespaces, one `pycni agent` each, VXLAN
# between them), puts pods on different nodes, shows them pinging each other
# and the outside world, then tears everything down. Runs as root; nothing
# is made in the host's own network namespace. (The single-node tour of the
# `pycni add/del` command is scripts/demo-cni.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."
PYCNI=${PYCNI:-.venv/bin/pycni}
BACKEND=${BACKEND:-vxlan}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }

export PYCNI_LAB_ROOT=$(mktemp -d /tmp/pycni-demo-lab.XXXXXX)
cleanup() {
  printf '\n\033[1m== pycni lab down\033[0m\n'
  "$PYCNI" lab down || true
  rm -rf "$PYCNI_LAB_ROOT"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "pycni lab up --nodes 3 --backend $BACKEND"
"$PYCNI" lab up --nodes 3 --backend "$BACKEND"

step "pods on different nodes"
"$PYCNI" lab pod add n1 web
"$PYCNI" lab pod add n2 db
"$PYCNI" lab pod add n3 cache
"$PYCNI" lab status

ip_of() { "$PYCNI" lab exec "$1" -- ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }
db=$(ip_of db); cache=$(ip_of cache)

step "web (on n1) pings db (on n2, $db) and cache (on n3, $cache)"
"$PYCNI" lab exec web -- ping -c 2 -W 2 "$db"
"$PYCNI" lab exec web -- ping -c 2 -W 2 "$cache"

step "what the agent on n1 installed for its peers"
"$PYCNI" lab exec n1 -- ip route show proto 124
if [ "$BACKEND" = vxlan ]; then
  "$PYCNI" lab exec n1 -- bridge fdb show dev pycni.1
  "$PYCNI" lab exec n1 -- ip neigh show dev pycni.1 nud permanent
fi

step "the outside world (203.0.113.10) is reached through the node's masquerade"
"$PYCNI" lab exec web -- ping -c 2 -W 2 203.0.113.10
