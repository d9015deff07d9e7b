"""The one error model that crosses every layer.

Each subclass carries its spec code as a class attribute, so a plugin
writes ``raise InvalidConfig("ipam.subnet: '10.0.0.0/33' is not a CIDR")``
and skel turns it into the wire JSON. Codes 0-99 are the spec's
well-known ones; 100+ are plugin specific; 999 is what the Go reference
uses for "anything else" and what we use for unexpected exceptions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any, ClassVar



class CniError(Exception):
    """An error with a CNI error code, a message and optional details."""

    code: ClassVar[int] = 999

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            # Instance override: used for plugin-specific codes (100+) and
            # for errors read back from a plugin whose code we don't model.
            self.code = code  # type: ignore[misc]

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, msg={self.msg!r}, details={self.details!r})"

    def to_wire(self, cni_version: str = "") -> dict[str, Any]:
        """The error object printed on stdout (spec section "Error")."""
        out: dict[str, Any] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out

    @staticmethod
    def from_wire(data: Any) -> CniError:
        """Rebuild a typed error from a plugin's error JSON.

        Raises ValueError when ``data`` is not an error object, so the caller
        can report "could not parse the plugin's diagnostic".
        """
        if not isinstance(data, dict) or not isinstance(data.get("code"), int) or isinstance(data.get("code"), bool):
            raise ValueError("error object needs an integer 'code'")
        code = data["code"]
        msg = data.get("msg", "")
        details = data.get("details", "")
        if not isinstance(msg, str) or not isinstance(details, str):
            raise ValueError("error object 'msg' and 'details' must be strings")
        cls = ERRORS_BY_CODE.get(code)
        if cls is None:
            return CniError(msg, details, code=code)
        return cls(msg, details)


class IncompatibleVersion(CniError):
    code = 1


class UnsupportedField(CniError):
    code = 2


class UnknownContainer(CniError):
    code = 3


class InvalidEnvironment(CniError):
    code = 4


class IOFailure(CniError):
    code = 5


class DecodingFailure(CniError):
    code = 6


class InvalidConfig(CniError):
    code = 7


class InvalidNetns(CniError):
    """Go-only code 8: CNI_NETNS is the plugin's own network namespace."""

    code = 8


class TryAgainLater(CniError):
    code = 11


class PluginNotAvailable(CniError):
    code = 50


class LimitedConnectivity(CniError):
    code = 51


class InternalError(CniError):
    code = 999


ERRORS_BY_CODE: dict[int, type[CniError]] = {
    cls.code: cls
    for cls in (
        IncompatibleVersion,
        UnsupportedField,
        UnknownContainer,
        InvalidEnvironment,
        IOFailure,
        DecodingFailure,
        InvalidConfig,
        InvalidNetns,
        TryAgainLater,
        PluginNotAvailable,
        LimitedConnectivity,
        InternalError,
    )
}
