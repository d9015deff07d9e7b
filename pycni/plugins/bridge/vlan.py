"""VLANs on bridge ports (``vlan``, ``vlanTrunk``, ``preserveDefaultVlan``).

- A port of a VLAN-filtering bridge starts with the default VLAN (VID 1,
  PVID, untagged); unless ``preserveDefaultVlan``, every VLAN already on the
  port is removed first.
- ``vlan`` makes the port an access port: that VID as PVID, untagged.
- ``vlanTrunk`` adds each VID tagged; a trunk without ``vlan`` carries
  untagged traffic in VID 1 (PVID, untagged).
- With ``isGateway`` and ``vlan``, the gateway address lives on a host link
  ``<bridge>.<vlan>``: one end of a veth pair whose other end is an access
  port of that VLAN. It is shared by every attachment and never deleted.

Kernels without CONFIG_BRIDGE_VLAN_FILTERING make every step here fail
with pycni.net's ``UnsupportedKernelFeature`` ("kernel does not support
bridge vlan filtering"), which ADD reports as it is.
"""

from __future__ import annotations

from pycni.plugins.steps import undone_on_failure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.plugins.bridge.conf import BridgeConf

__all__ = ["configure_port_vlans", "ensure_vlan_gateway_link"]

_DEFAULT_VID = 1


def _set_port_vlans(port: str, access_vid: int, trunk: tuple[int, ...], preserve_default: bool) -> None:
    from pycni.net.bridge import add_bridge_vlan, del_bridge_vlan, list_bridge_vlans

    if not preserve_default:
        for vlan in list_bridge_vlans(port):
            del_bridge_vlan(port, vlan.vid)
    untagged_vid = access_vid or (_DEFAULT_VID if trunk else 0)
    if untagged_vid:
        add_bridge_vlan(port, untagged_vid, pvid=True, untagged=True)
    for vid in trunk:
        if vid != untagged_vid:
            add_bridge_vlan(port, vid)


def configure_port_vlans(port: str, conf: BridgeConf) -> None:
    """Apply the config's VLANs to a container's host veth (nothing without vlan/vlanTrunk)."""
    if conf.vlan_filtering:
        _set_port_vlans(port, conf.vlan, conf.vlan_trunk, conf.preserve_default_vlan)


def ensure_vlan_gateway_link(conf: BridgeConf) -> LinkInfo:
    """The ``<bridge>.<vlan>`` link that carries the VLAN's gateway address, created if absent."""
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import delete_link, get_link, set_link_up, set_master
    from pycni.net.netns import current_netns_path
    from pycni.net.veth import create_veth_pair

    name = f"{conf.bridge}.{conf.vlan}"
    try:
        return get_link(name)
    except LinkNotFound:
        pass
    bridge = get_link(conf.bridge)
    port, _gateway_end = create_veth_pair(name, current_netns_path(), mtu=bridge.mtu)
    with undone_on_failure(lambda: delete_link(port.name, missing_ok=True), f"delete veth '{port.name}'"):
        set_master(port.name, conf.bridge)
        _set_port_vlans(port.name, conf.vlan, (), conf.preserve_default_vlan)
        set_link_up(name)
    return get_link(name)
