"""``pycni doctor``: why pod networking is broken on a node, and the fix.

Collect once, judge purely: ``collect`` gathers a ``Snapshot`` of the node
(files, processes, the lease, the kernel), each check in ``checks`` is a pure
function of it, ``run`` orders them root causes first, ``report`` prints them.
``explain`` maps a runtime's error message to a check id and its fix.
"""
