"""The warm executor: a daemon that runs plugin calls for the shims in /opt/cni/bin.

- ``protocol`` — the wire format between shim and daemon (pure bytes in/out).
- ``shim``     — what an installed plugin file runs: forward to the daemon,
                 or run the plugin in-process. Imports only builtins on its
                 fast path.
- ``daemon``   — ``pycni executor``: the socket server, workers that enter
                 the caller's netns, timeouts, metrics and logs.

Importing this package imports nothing: the shim's start-up path goes
through it on every plugin call.
"""
