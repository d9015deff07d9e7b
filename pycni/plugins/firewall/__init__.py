"""firewall: allow a pod's addresses through the host's forwarding filter (chained plugin).

Modules: ``conf`` (the config, pure), ``plugin`` (the handlers; it
chooses the backend), ``backend`` (the contract both backends keep),
``rules`` (the rules as data, pure), ``iptables_backend`` (the reference's
chains) and ``nft_backend`` (a table of our own). Like the reference, it
speaks spec 0.4.0 and later only (older configs get code 1; the versions
are in pycni.registry, which registers every plugin).
"""
