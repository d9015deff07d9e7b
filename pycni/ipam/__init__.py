"""IP address management: the host-local and static plugins, and delegating to IPAM plugins.

Each IPAM plugin answers ADD with an IPAM result (spec section 3.4: ``ips``
without ``interface``, ``routes``, ``dns``) that the calling main plugin
applies to its interface. Import the modules directly
(``pycni.ipam.host_local.plugin``, ``pycni.ipam.static``); this package
imports nothing, so a plugin pays only for what it uses.
"""
