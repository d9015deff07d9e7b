"""The kernel layer: the only package in pycni that talks to the kernel.

One job per module, typed verb-noun functions, pyroute2 hidden behind them:

- ``netns``     open namespaces safely, run code inside one (``run_in_netns``)
- ``links``     look up, create (veth, macvlan, ipvlan, vlan, dummy, tap), change, delete links
- ``bridge``    bridges and their ports (hairpin, isolation, VLANs)
- ``addrs``     addresses, the bridge gateway-address rules
- ``routes``    routes
- ``sysctl``    /proc/sys, IP forwarding
- ``configure`` apply a CNI result to an interface (ConfigureIface)
- ``errors``    what all of them raise (``NetError`` and subclasses, all ``CniError``)

Functions act in the calling thread's network namespace unless they take a
``netns``. Importing this package does not import pyroute2.
"""
