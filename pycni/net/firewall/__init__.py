"""Packet filtering and NAT: nftables, iptables, and the rule sets pycni applies through them.

- ``nft``           nftables through libnftables: atomic scripts, JSON listings
- ``iptables/``     iptables / ip6tables through their tools:
  - ``tool``          run the tool, which iptables it is (nft or legacy), chains known in-process
  - ``save_restore``  one atomic ``iptables-restore --noflush`` per table
  - ``state``         iptables-save parsed, edited in memory, written back once (with retries)
- ``masquerade``    the ipMasq rules of bridge and ptp (nftables, or iptables like the Go plugins)
- ``spoofcheck``    the MAC spoof-check rules of the bridge plugin's macspoofchk (nftables)
- ``nflog``         packets nftables logs to an NFLOG group, read over nfnetlink (policy)

Rule text for the portmap and firewall plugins is rendered in those plugins;
applying it goes through ``nft`` and ``iptables``.
"""
