#!/usr/bin/env bash
# Install what pycni's demo and tests need on Debian/Ubuntu, idempotently:
# Debian packages (the Go reference plugins, iproute2, ping, nftables...)
# and a venv at .venv with pycni installed editable plus the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  iproute2 iputils-ping curl iperf3 nftables libnftables1 iptables conntrack
  containernetworking-plugins busybox-static python3-venv
  podman runc etcd-server openssl
  gcc libc6-dev  # pycni install compiles the plugin shim (pycni/executor/cshim.c)
  wireguard-go wireguard-tools  # the wireguard backend where the kernel has no WireGuard
  bird2                          # the bgp backend's routing daemon
  dnsmasq-base                   # the DHCP server the dhcp IPAM tests talk to
  containerd                     # the second real runtime (ctr run --cni)
  tcpdump                        # the wireguard lab test proves the underlay carries no plaintext
)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's etcd-server starts a system etcd on 127.0.0.1:2379 where systemd runs. pycni's tests
  # start their own on random ports; leave no etcd of ours behind (one that was there stays).
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# The distribution's interpreter (what python3-venv above is for) before whatever python3 is first on
# PATH: Debian builds it with profile-guided and link-time optimization, linked statically. A self-built
# interpreter without --enable-optimizations (pyenv's default, this machine's PATH) spent ~10 % more CPU
# per plugin call in the executor and 2 ms more to start (README, "The interpreter"). PYTHON=... overrides.
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON=/usr/bin/python3
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
# Re-install only when the project metadata changed since the last run.
stamp=.venv/.pycni-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing pycni and test tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
