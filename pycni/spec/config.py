"""Network configuration: parsing, validation and the per-plugin request config.

Contract (spec sections 2.1-2.3, libcni's parsing rules):

- ``conflist_from_bytes`` reads a network configuration list (a
  ``.conflist`` file); ``plugin_conf_from_bytes`` reads one plugin object
  (a legacy ``.conf`` file or a sibling-directory plugin file);
  ``conflist_from_conf`` promotes a legacy single-plugin config to a
  one-element list.
- Bad JSON raises DecodingFailure (code 6); a well-formed document that
  breaks a rule raises InvalidConfig (code 7) whose message starts with the
  JSON path of the problem (``plugins[1].type: missing``).
- Unknown keys are kept verbatim in ``PluginConf.raw``: runtimes must pass
  them through unchanged.
- ``request_config`` builds the stdin of one plugin execution;
  ``runtime_config_for`` filters the runtime's capability arguments by what
  a plugin declares.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pycni.spec import wirejson
from pycni.spec.errors import CniError, DecodingFailure, InvalidConfig
from pycni.spec.readers import CONFLISTS, describe_value, join, read_object, read_str
from pycni.spec.record import record, replace
from pycni.spec.validate import validate_network_name
from pycni.spec.version import negotiate, parse_version

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "NetConfList",
    "PluginConf",
    "conflist_from_bytes",
    "conflist_from_conf",
    "ipam_type_of",
    "plugin_conf_from_bytes",
    "request_config",
    "runtime_config_for",
]


@record
class PluginConf:
    """One plugin configuration object, kept as given (unknown keys included).

    Only the keys the runtime itself needs are exposed as properties; the
    object was validated on construction by the ``*_from_bytes`` functions.
    """

    raw: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw["type"])

    @property
    def cni_version(self) -> str:
        return str(self.raw.get("cniVersion", ""))

    @property
    def name(self) -> str:
        return str(self.raw.get("name", ""))

    @property
    def capabilities(self) -> dict[str, bool]:
        return dict(self.raw.get("capabilities") or {})

    @property
    def ipam_type(self) -> str:
        return ipam_type_of(self.raw)


@record
class NetConfList:
    """A network configuration list: the unit the runtime ADDs, DELs, CHECKs and GCs."""

    name: str
    cni_version: str
    cni_versions: tuple[str, ...] = ()
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined_plugins: bool = False
    plugins: tuple[PluginConf, ...] = ()
    #: The document as read; libcni caches exactly these bytes on ADD.
    raw_bytes: bytes = b""

    @property
    def negotiated_version(self) -> str:
        """The version sent to every plugin: the highest of cniVersion and cniVersions (spec 1.13)."""
        return negotiate(self.cni_version, self.cni_versions)


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def conflist_from_bytes(data: bytes, *, require_plugins: bool = True) -> NetConfList:
    """Parse a network configuration list.

    With ``require_plugins=False`` a list without a ``plugins`` key is
    accepted (its plugins come from a sibling directory, see
    pycni.runtime.confdir) unless ``loadOnlyInlinedPlugins`` is true.
    """
    doc = _load_object(data, "network configuration")
    name = _read_name(doc)
    cni_version = _read_version(doc, "cniVersion")
    cni_versions = _read_versions(doc)
    load_only_inlined = _read_bool(doc, "loadOnlyInlinedPlugins")

    if "plugins" in doc:
        raw_plugins = doc["plugins"]
        if not isinstance(raw_plugins, list) or not raw_plugins:
            raise InvalidConfig(f"plugins: must be a non-empty list, got {describe_value(raw_plugins)}")
        plugins = tuple(_plugin_from_object(p, f"plugins[{i}]") for i, p in enumerate(raw_plugins))
    elif load_only_inlined:
        raise InvalidConfig("plugins: missing, and loadOnlyInlinedPlugins is true")
    elif require_plugins:
        raise InvalidConfig("plugins: must be a non-empty list")
    else:
        plugins = ()

    conflist = NetConfList(
        name=name,
        cni_version=cni_version,
        cni_versions=cni_versions,
        disable_check=_read_bool(doc, "disableCheck"),
        disable_gc=_read_bool(doc, "disableGC"),
        load_only_inlined_plugins=load_only_inlined,
        plugins=plugins,
        raw_bytes=bytes(data),
    )
    _ = conflist.negotiated_version  # fail now, not at the first ADD, when no version is usable
    return conflist


def plugin_conf_from_bytes(data: bytes) -> PluginConf:
    """Parse one plugin object (a legacy ``.conf`` file or a sibling-directory plugin file)."""
    doc = _load_object(data, "plugin configuration")
    return _plugin_from_object(doc, "")


def conflist_from_conf(conf: PluginConf, raw_bytes: bytes | None = None) -> NetConfList:
    """Promote a legacy single-plugin network config to a one-element list.

    The plugin's own ``name`` and ``cniVersion`` become the list's. By
    default ``raw_bytes`` (what gets cached on ADD) is a synthesized conflist
    document, as libcni does, so a cached config always reads back as a
    list; pass the original file bytes to keep those instead.
    """
    document = {"cniVersion": conf.cni_version, "name": conf.name, "plugins": [dict(conf.raw)]}
    conflist = conflist_from_bytes(_encode(document))
    return conflist if raw_bytes is None else replace(conflist, raw_bytes=bytes(raw_bytes))


# --------------------------------------------------------------------------
# Request config (runtime -> plugin stdin)
# --------------------------------------------------------------------------


def request_config(
    plugin: PluginConf,
    *,
    name: str,
    cni_version: str,
    prev_result: Mapping[str, Any] | None = None,
    runtime_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The stdin for one plugin execution (spec 2.3), as compact JSON bytes.

    A copy of the plugin object with ``cniVersion`` and ``name`` set to the
    list's, ``prevResult`` when given, ``runtimeConfig`` only when non-empty
    (libcni omits the key entirely otherwise), then ``extra`` keys (GC's
    ``cni.dev/valid-attachments``) merged on top. Everything else passes
    through unchanged.
    """
    doc = dict(plugin.raw)
    doc["cniVersion"] = cni_version
    doc["name"] = name
    if prev_result is not None:
        doc["prevResult"] = dict(prev_result)
    if runtime_config:
        doc["runtimeConfig"] = dict(runtime_config)
    if extra:
        doc.update(extra)
    return _encode(doc)


def runtime_config_for(plugin: PluginConf, capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """Capability arguments the plugin opted into (``capabilities: {cap: true}``) and the runtime provides."""
    caps = plugin.capabilities
    return {cap: capability_args[cap] for cap, enabled in caps.items() if enabled and cap in capability_args}


# --------------------------------------------------------------------------
# Readers: each knows the JSON path it reports in its messages
# --------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; Go (and the spec's JSON) does not.
    raise ValueError(f"invalid JSON constant {name}")


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = wirejson.loads(data, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise DecodingFailure(f"failed to parse {what}: {exc}") from exc
    if not isinstance(doc, dict):
        raise DecodingFailure(f"failed to parse {what}: expected a JSON object, got {describe_value(doc)}")
    return doc


def _encode(doc: Mapping[str, Any]) -> bytes:
    return wirejson.dumps_compact(doc).encode("utf-8")


def _read_name(doc: dict[str, Any]) -> str:
    name = CONFLISTS.read_str(doc, "name", "", required=True)
    try:
        validate_network_name(name)
    except CniError as exc:
        raise InvalidConfig(f"name: {exc.msg}", exc.details) from exc
    return name


def _check_version(text: str, path: str) -> None:
    try:
        parse_version(text)
    except CniError as exc:
        raise InvalidConfig(f"{path}: {text!r} is not a version") from exc


def _read_version(doc: Mapping[str, Any], key: str, base: str = "") -> str:
    value = CONFLISTS.read_str(doc, key, base)
    if value:
        _check_version(value, join(base, key))
    return value


def _read_versions(doc: dict[str, Any]) -> tuple[str, ...]:
    versions = CONFLISTS.read_list(doc, "cniVersions", "")
    for i, item in enumerate(versions):
        if not isinstance(item, str):
            raise CONFLISTS.wrong_type(f"cniVersions[{i}]", "a string", item)
        _check_version(item, f"cniVersions[{i}]")
    return tuple(versions)


def _read_bool(doc: dict[str, Any], key: str) -> bool:
    """libcni accepts a JSON boolean or the strings "true"/"false" in any case."""
    value = doc.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise CONFLISTS.wrong_type(key, "a boolean", value)


def _plugin_from_object(obj: Any, base: str) -> PluginConf:
    """Validate the keys the runtime relies on; leave every other key to the plugin."""
    obj = CONFLISTS.as_object(obj, base or "plugin")
    if obj.get("type") == "":
        raise InvalidConfig(f"{join(base, 'type')}: missing")
    CONFLISTS.read_str(obj, "type", base, required=True)
    CONFLISTS.read_str(obj, "cniVersion", base)
    CONFLISTS.read_str(obj, "name", base)

    capabilities = CONFLISTS.read_object(obj, "capabilities", base) or {}
    caps_path = join(base, "capabilities")
    for cap, enabled in capabilities.items():
        if not isinstance(enabled, bool):
            raise CONFLISTS.wrong_type(f"{caps_path}.{cap}", "a boolean", enabled)

    ipam = CONFLISTS.read_object(obj, "ipam", base) or {}
    CONFLISTS.read_object(obj, "dns", base)
    CONFLISTS.read_str(ipam, "type", join(base, "ipam"))
    try:
        ipam_type_of(obj)  # what plugins will read, other spellings of the keys included
    except InvalidConfig as exc:
        raise InvalidConfig(join(base, exc.msg)) from exc
    return PluginConf(MappingProxyType(obj))


def ipam_type_of(config: Mapping[str, Any]) -> str:
    """``ipam.type`` of a plugin config, "" when it has no IPAM (no ``ipam``, or ``ipam: {}``).

    The one reading of it: the runtime (``PluginConf.ipam_type``), the IPAM
    delegation and every plugin's config use this, so they cannot disagree
    about a config. Keys are matched as plugins match them (Go's
    encoding/json); a non-object ``ipam`` or a non-string ``type`` is
    InvalidConfig.
    """
    ipam = read_object(config, "ipam", "")
    return read_str(ipam, "type", "ipam") if ipam is not None else ""
