"""tuning: sysctls and link attributes of the pod's interface (chained plugin).

``conf`` reads the config, ``plugin`` has the commands (registered in
pycni.registry, which imports them on a plugin call only).
"""
