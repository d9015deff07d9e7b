"""portmap: forward host ports to a container (chained plugin, capability ``portMappings``).

Modules: ``conf`` (config and what to install, pure), ``plugin`` (the
handlers), ``nft_backend`` (default: one nftables table, map lookups,
owner-tagged elements; pure), ``nft_io`` (its reads and writes: nfnetlink
for elements, libnftables for the rest) and ``iptables_backend`` (the reference's
CNI-HOSTPORT-* / CNI-DN-* chains). Only the configured backend's module
is imported.
"""
