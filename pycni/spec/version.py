"""Spec versions: parsing, ordering, negotiation and per-command gates.

Version strings are ``MAJOR[.MINOR[.MICRO]]``; the empty string means
0.1.0 (what the Go reference assumes for a config without cniVersion).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pycni.spec.errors import DecodingFailure, IncompatibleVersion
from pycni.spec.record import record

# The one list of versions, in a module that imports nothing (VERSION's cold path); re-exported here.
from pycni.spec.version_info import CURRENT_VERSION as CURRENT_VERSION
from pycni.spec.version_info import SUPPORTED_VERSIONS as SUPPORTED_VERSIONS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

#: The oldest config version in which each command exists. One table, not
#: a gate copied into every dispatcher.
MIN_VERSION_FOR_COMMAND: dict[str, str] = {
    "ADD": "0.1.0",
    "DEL": "0.1.0",
    "VERSION": "0.1.0",
    "CHECK": "0.4.0",
    "STATUS": "1.1.0",
    "GC": "1.1.0",
}

Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    """Parse a version string; ``""`` is 0.1.0. Raises DecodingFailure."""
    if text == "":
        return (0, 1, 0)
    parts = text.split(".")
    if len(parts) > 3:
        raise DecodingFailure(f"invalid version {text!r}: too many parts")
    numbers: list[int] = []
    for part in parts:
        if not part.isdigit():
            raise DecodingFailure(f"invalid version {text!r}: {part!r} is not a number")
        numbers.append(int(part))
    while len(numbers) < 3:
        numbers.append(0)
    return (numbers[0], numbers[1], numbers[2])


def version_at_least(version: str, minimum: str) -> bool:
    return parse_version(version) >= parse_version(minimum)


def command_allowed(command: str, version: str) -> bool:
    """True when ``command`` exists in config version ``version``."""
    minimum = MIN_VERSION_FOR_COMMAND.get(command)
    return minimum is not None and version_at_least(version, minimum)


def result_family(version: str) -> str:
    """Which result shape a version uses: "0.2" (ip4/ip6), "0.4" or "1.x"."""
    parsed = parse_version(version)
    if parsed < (0, 3, 0):
        return "0.2"
    if parsed < (1, 0, 0):
        return "0.4"
    return "1.x"


def negotiate(cni_version: str, cni_versions: Sequence[str] = (), supported: Iterable[str] = SUPPORTED_VERSIONS) -> str:
    """Pick the version a conflist runs at.

    The spec: the highest of ``{cniVersion} ∪ cniVersions``. Like libcni,
    entries newer than what we support are dropped; if ``cniVersions`` is
    absent ``cniVersion`` is used verbatim.
    """
    if not cni_versions:
        return cni_version
    ceiling = max(parse_version(v) for v in supported)
    candidates = [v for v in [*cni_versions, cni_version] if v and parse_version(v) <= ceiling]
    if not candidates:
        raise IncompatibleVersion(
            "no supported version in cniVersions",
            f"config offers {list(cni_versions)}, library supports {list(supported)}",
        )
    return max(candidates, key=parse_version)


@record
class PluginInfo:
    """What a plugin answers to VERSION."""

    cni_version: str
    supported_versions: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"cniVersion": self.cni_version, "supportedVersions": list(self.supported_versions)}

    @classmethod
    def from_wire(cls, data: Any) -> PluginInfo:
        """Decode a VERSION answer the way libcni does."""
        if not isinstance(data, dict):
            raise DecodingFailure("version answer: expected a JSON object")
        cni_version = data.get("cniVersion")
        if not isinstance(cni_version, str) or not cni_version:
            raise DecodingFailure("version answer: missing 'cniVersion'")
        supported = data.get("supportedVersions")
        if supported is None:
            if cni_version == "0.2.0":
                return cls(cni_version, ("0.1.0", "0.2.0"))
            raise DecodingFailure("version answer: missing 'supportedVersions'")
        if not isinstance(supported, list) or not all(isinstance(v, str) for v in supported):
            raise DecodingFailure("version answer: 'supportedVersions' must be a list of strings")
        return cls(cni_version, tuple(supported))

    def supports(self, version: str) -> bool:
        return version in self.supported_versions


def check_supported(version: str, supported: Sequence[str]) -> None:
    """Raise IncompatibleVersion (code 1) unless ``version`` is in ``supported``."""
    if version not in supported:
        quoted = ", ".join(f'"{v}"' for v in supported)
        raise IncompatibleVersion("incompatible CNI versions", f'config is "{version}", plugin supports [{quoted}]')
