"""The warm executor: a daemon that runs plugin calls for the shims in /opt/cni/bin.

- ``protocol`` — the wire format between shim and daemon (pure bytes in/out).
- ``shim``     — what an installed plugin file runs: forward to the daemon,
                 or run the plugin in-process. Imports only builtins on its
                 fast path.
- ``daemon``   — the server: connections, checks, limits, timeouts.
- ``call``     — one call on a worker thread inside the caller's netns.
- ``startup``  — the socket (bound or from systemd), preloading, signals.
- ``command``  — ``pycni executor`` (foreground or ``--daemon``).
- ``metrics``, ``logs``, ``outcome``, ``systemd`` — what their names say.

Importing this package imports nothing: the shim's start-up path goes
through it on every plugin call.
"""
