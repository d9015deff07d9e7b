"""sbr (chained): source-based routing for one container interface.

``conf`` reads the config, ``plugin`` has the commands; pycni.rundir has
the per-namespace lock, pycni.net.rules and pycni.net.routes do the kernel work.

Spec 6.18. Config: ``table`` (optional routing table id), ``gateways``
(at most one IPv4 and one IPv6 address), ``addSourceHints`` (bool).
The relevant addresses are prevResult's IPs on CNI_IFNAME (or on no
particular interface). ADD, inside the container:

- with ``table``: a rule ``from <ip>/32 (or /128) lookup <table>`` per
  address; routes stay where they are;
- without: per address, the first table id from 100 that no rule or route
  uses, a rule ``from <ip> lookup <T>``, a default route via the family's
  configured gateway (else the address's gateway) on the interface in T,
  and a copy in T of each main-table route of the interface that belongs to
  the address (its source or gateway is in the address's subnet, or it has
  neither). Then the interface's routes of those families leave the main
  table, except IPv6 link-local ones; with ``addSourceHints`` the subnet
  routes stay too (replaced by ones carrying the address as ``src`` hint).
  A repeated ADD finds its rules and reuses them.

Where this differs from the reference: only the families sbr handles lose
their main-table routes, and never fe80::/64 (the reference moves every
route of the interface, which breaks link-local IPv6 on it); a second ADD
does not add a second rule and table.

The result is prevResult, unchanged. DEL deletes the rules whose source is
an address on the interface or one of prevResult's (only those looking up
``table`` when it is set); its routes go with the interface. CHECK checks
that every address has its rule and, without ``table``, that the rule's
table routes via the interface (with the default route when there is a
gateway).

Changes to one namespace are serialised by a lock file named after the
namespace's inode in ``$PYCNI_RUN_DIR/sbr`` (default /run/pycni/sbr),
removed again when the command ends. The reference locks the netns path
itself, which creates a regular file there when DEL comes after the
namespace is gone, and then fails; pycni never creates anything at the
netns path, and a DEL without a namespace simply succeeds. The reference's
CHECK does nothing.
"""
