"""The cluster network: config and subnet leases in etcd, and the node agent built on them.

- ``config``: the cluster config document (Flannel's field names), pure.
- ``kv``: the narrow revisioned key-value seam; ``etcd.EtcdKV`` implements it on etcd's
  v3 gateway, ``pycni.testing.kv.MemoryKV`` in memory.
- ``leases``: ``SubnetManager`` (acquire, renew, release, list, watch) and the key layout.
- ``watch``: the pure lease watcher (snapshots and events in, added/removed out).
- ``nodes``: the per-node view ``pycni node list`` prints.

Nothing is imported here, so ``import pycni.cluster.config`` stays light.
"""
