"""bandwidth (chained): shape a veth attachment's traffic with token bucket filters.

Spec 6.17. ``conf`` reads the rates and bursts (config and the
``bandwidth`` capability), ``plugin`` has the commands; pycni.net.tc does
the kernel work. Spec versions 0.3.0 and later, as the reference.
"""
