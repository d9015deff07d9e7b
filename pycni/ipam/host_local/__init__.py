"""host-local IPAM: addresses from configured ranges, reserved in files on this host.

- ``config``: the ``ipam`` section and the requested IPs, validated.
- ``allocator``: which address to take (round-robin, requested IPs); pure.
- ``store``: the reservations, on disk in the Go reference's layout (so both
  implementations can share a dataDir) or in memory for tests.
- ``plugin``: the ADD/DEL/CHECK/STATUS/GC handlers and the entry point
  (``python -m pycni.ipam.host_local.plugin``).
"""
