"""The cluster network: config and subnet leases in etcd, and the node agent built on them.

- ``config``: the cluster config document (Flannel's field names), pure.
- ``kv``: the narrow revisioned key-value seam; ``etcd.EtcdKV`` implements it on etcd's
  v3 gRPC API (``etcd_gateway.EtcdGatewayKV`` on its JSON gateway), ``pycni.testing.kv.MemoryKV`` in memory.
- ``lease``: the key layout, the lease and history values and their codec, pure.
- ``allocation``: which subnet a node may take (quarantine included), pure.
- ``subnets``: ``SubnetManager``: acquire, renew, release and list leases over ``kv``.
- ``watch``: the pure lease watcher (snapshots and events in, added/removed out).
- ``watch_loop``: ``watch_leases``, the one loop that follows the leases, through outages.
- ``retry``: the one backoff the agent's loops retry datastore failures with.
- ``nodes``: the per-node view ``pycni node list`` prints.
- The agent: ``agent`` (wiring), ``lease_keeper``, ``peer_watcher``, ``reconciler``,
  ``backends``, ``underlay``, ``conflist``, ``masquerade``, ``owned_routes``, ``agent_metrics``.

Nothing is imported here, so ``import pycni.cluster.config`` stays light.
"""
