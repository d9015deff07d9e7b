"""The kernel layer: the only package in pycni that talks to the kernel.

One job per module, typed verb-noun functions, pyroute2 hidden behind them.
Functions act in the calling thread's network namespace unless they take a
``netns``. Importing this package or any module in it does not import
pyroute2; the plugins' hot path then loads only its message classes, and
pyroute2's API (~400 ms to import) only for tc, vxlan, rules, bridge
creation and VLANs, conntrack without the tool, and ``preload``.

Namespaces and errors

- ``netns``      open namespaces safely, run code inside one (``run_in_netns``)
- ``errors``     what every module raises (``NetError`` and subclasses, all ``CniError``)
- ``sysctl``     /proc/sys, IP forwarding

Links

- ``links``      look links up (``LinkInfo``), change them (up, mtu, mac, alias, master,
                 name, netns), delete them, wait until up
- ``veth``       veth pairs between the host and a container
- ``stacked``    macvlan, ipvlan and vlan links on a parent, and dummy links
- ``tap``        persistent tap devices (/dev/net/tun), SELinux detection
- ``bridge``     bridges and their ports (hairpin, isolation, VLANs)
- ``vxlan``      VXLAN devices, their FDB and neighbour entries (cluster agent)
- ``hostdev``    move a host device into a container and give it back (host-device)
- ``linkattrs``  the link attributes tuning reads, sets and restores (mac, mtu, txqlen,
                 promisc, allmulti)

Addresses, routes, traffic

- ``addrs``      addresses, the bridge gateway-address rules
- ``routes``     routes
- ``rules``      policy routing rules, free table lookup (sbr)
- ``configure``  apply a CNI result to an interface (ConfigureIface)
- ``tc``         token-bucket shaping, ingress redirects to ifb devices, ifb links (bandwidth)
- ``localnet``   route_localnet and the local-routing check (portmap)
- ``conntrack``  flush conntrack entries (portmap)
- ``packet``     packet sockets: IPv4 packets on one interface below the IP stack (dhcp)

Packet filtering: ``firewall/`` (nftables, iptables, masquerade, spoof check);
see its ``__init__``.

Private: ``netlink/``, the one netlink layer all of the above go through
(see its ``__init__`` and docs/DESIGN.md, "The plugins' hot path").

``preload()`` imports what the first netlink request would, for a process
that stays warm (the executor).
"""

from __future__ import annotations

__all__ = ["preload"]


def preload() -> None:
    """Import all of pyroute2 and its message classes, so no request pays for it."""
    from pycni.net.netlink import messages

    messages.pyroute2()  # the whole package: IPRoute, Conntrack
    for module in ("ifinfmsg", "ifaddrmsg", "rtmsg"):  # what a message codec does not encode falls back to
        messages.pyroute2_module(f"netlink.rtnl.{module}")
