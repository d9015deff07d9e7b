"""The CNI specification as pure data: configs, results, versions, errors.

Nothing in this package performs I/O. Import the submodules directly
(``from pycni.spec.errors import InvalidConfig``); this file stays empty so
that a plugin importing one piece does not pay for the others.
"""
