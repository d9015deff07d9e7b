"""dhcp IPAM: addresses leased from a DHCP server on the pod's link, kept by a daemon.

As the reference's ``dhcp`` plugin: the plugin forwards ADD/DEL/CHECK to a
long-lived daemon (``dhcp daemon [-socketpath PATH]``) over a unix socket;
the daemon acquires the lease inside the pod's netns, renews it at T1,
rebinds at T2, and releases it on DEL before answering.

- ``packet``: DHCPv4 messages and their IPv4/UDP framing, bytes in and out; pure.
- ``options``: option names and codes, what a lease means (address, gateway,
  routes, timers) and the request/provide options of the config; pure.
- ``lease``: the lease's timers as a state machine over a clock; pure.
- ``client``: the exchanges (DORA, renew, rebind, release) over a ``Link``.
- ``link``: the pod's interface, a packet socket opened in its netns (``pycni.net.packet``).
- ``conf``: the ``ipam`` section the plugin and daemon read.
- ``rpc``: the request/answer framing between plugin and daemon.
- ``store``: the daemon's leases on disk, so a restarted daemon resumes them.
- ``keeper``: acquiring and releasing a lease, and the thread that keeps one.
- ``daemon``: the leases by attachment and the unix-socket server.
- ``plugin``: the CNI handlers and ``dhcp daemon`` (``command_line``).
"""
