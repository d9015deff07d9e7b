#!/usr/bin/env bash
# A multi-node cluster on this machine: `pycni lab` builds an underlay, an
# etcd and three nodes (network namespaces, one `pycni agent` each, VXLAN
# between them), puts pods on different nodes, shows them pinging each other
# and the outside world, NetworkPolicy at work, then breaks a node on purpose
# for `pycni doctor` to name and heals it, and tears everything down. Runs as root; nothing
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

step "NetworkPolicy: two pods of namespace shop, front (n1) and api (n2, HTTP on its port named 'http')"
"$PYCNI" lab pod add n1 front --namespace shop --labels app=front
"$PYCNI" lab pod add n2 api --namespace shop --labels app=api --port http=80/TCP
api=$(ip_of shop/api)
"$PYCNI" lab exec shop/api -- python3 -m http.server 80 --bind "$api" >/dev/null 2>&1 &
server=$!
sleep 1
http() {
  if code=$("$PYCNI" lab exec shop/front -- curl -s -o /dev/null -m 2 -w "%{http_code}" "http://$api/"); then
    echo "front -> api: HTTP $code"
  else
    echo "front -> api: no answer (dropped)"
  fi
}
http

step "a default deny for namespace shop: pycni apply -f -"
"$PYCNI" apply -f - <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}}
YAML
http
step "why? pycni policy explain --from shop/front --to shop/api --port http"
"$PYCNI" policy explain --from shop/front --to shop/api --port http || true

step "allow front -> api on the named port http (first --dry-run: what would change)"
cat > "$PYCNI_LAB_ROOT/allow.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: front-to-api, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: front}}}]
    ports: [{port: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: front-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: front}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: http}]
YAML
"$PYCNI" apply --dry-run -f "$PYCNI_LAB_ROOT/allow.yaml"
"$PYCNI" apply -f "$PYCNI_LAB_ROOT/allow.yaml"
http
"$PYCNI" policy explain --from shop/front --to shop/api --port http
kill "$server" 2>/dev/null || true

step "pycni doctor: break n2 on purpose (a foreign firewall drops forwarded traffic, as Docker's FORWARD DROP does)"
"$PYCNI" lab break n2 forward-drop
"$PYCNI" lab exec web -- ping -c 1 -W 2 "$db" >/dev/null || echo "web -> db ($db): no answer"
step "pycni lab doctor n2: what is wrong, and the fix"
"$PYCNI" lab doctor n2 || echo "(doctor exits 1: a check fails)"
step "pycni lab heal n2"
"$PYCNI" lab heal n2
"$PYCNI" lab exec web -- ping -c 1 -W 2 "$db" >/dev/null && echo "web -> db ($db): answers again"
