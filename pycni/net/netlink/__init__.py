"""Private to ``pycni.net``: the one netlink layer every kernel helper goes through.

Nothing outside ``pycni.net`` imports from here (``pycni.net.preload()`` is
the public way to warm it up). Modules, each importing only those above it:

- ``errors``    kernel errors become ours: ``failing(action)``, ``describe(exc)``, ``strerror(code)``
- ``wire``      rtnetlink constants, the attribute codec and ``exchange``: one request on a
                blocking socket opened per call, in the calling thread's netns, with ack parsing
- ``pyroute2_package``  pyroute2's package and submodules on first use, without its 400 ms
                package ``__init__``
- ``codec``     link/address/route messages encoded and decoded by hand (pyroute2's bytes)
- ``messages``  builders for link/address/route messages and ``request`` to send one through
                ``wire`` (pyroute2's message classes for what ``codec`` does not know)
- ``lookup``    link lookups decoded by hand: ``index_of``, ``query_link``, ``dump_links``
- ``iproute``   pyroute2's ``IPRoute`` handles (``rtnl()``, ``session()``) for the requests the
                hot path does not make (tc, vxlan, neighbours, rules, bridge VLANs)

Why two ways to send: see docs/DESIGN.md, "The plugins' hot path". The
frequent requests (lookups, link changes, addresses, routes) skip pyroute2's
asyncio request pipeline; the rest keep its high-level API.
"""
