"""pycni: the Container Network Interface in Python.

Layers (each imports only the ones above it): spec -> skel -> runtime ->
net -> ipam -> plugins -> executor -> cluster -> policy -> cli.
Importing this package imports nothing else: plugin start-up is on every
container's critical path.
"""

__version__ = "0.1.0"
