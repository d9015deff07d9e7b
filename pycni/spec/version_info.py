"""The versions pycni speaks, and a plugin's answer to VERSION, importing nothing.

Contract:

- ``SUPPORTED_VERSIONS`` (oldest first) and ``CURRENT_VERSION`` are the
  library's; ``pycni.spec.version`` re-exports them.
- ``plugin_info(versions, request)`` is the bytes a plugin prints for
  VERSION: compact JSON and a newline, like Go's encoder. It echoes the
  request's ``cniVersion`` when the plugin supports it (what the spec
  asks), else the current version (what Go does); a request that is not a
  JSON object, or none, gets the current version.

Why a module of its own: VERSION is what a runtime asks first, often of a
plugin process nothing else has started (the cold path, no executor), and
there Python's start is most of the cost. This module imports no other
module, not even ``json`` (with ``re`` and ``enum`` behind it, ~5 ms) for
the request libcni sends, ``{"cniVersion":"1.1.0"}``: a body that is
exactly one ``cniVersion`` of digits and dots is read directly, anything
else goes through ``json``, so both ways give the same answer.
"""

__all__ = ["CURRENT_VERSION", "SUPPORTED_VERSIONS", "plugin_info", "requested_version"]

#: Every version this library reads and writes, oldest first.
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = SUPPORTED_VERSIONS[-1]

_JSON_SPACE = b" \t\n\r"  # JSON's whitespace; bytes.strip() alone would strip more
_VERSION_CHARS = frozenset(b"0123456789.")


def plugin_info(versions: tuple[str, ...], request: bytes) -> bytes:
    """VERSION's answer for a plugin supporting ``versions``, given VERSION's stdin ``request``."""
    version = requested_version(request)
    if version not in versions:
        version = CURRENT_VERSION
    listed = ",".join(f'"{v}"' for v in versions)  # version strings need no JSON escaping
    return f'{{"cniVersion":"{version}","supportedVersions":[{listed}]}}\n'.encode()


def requested_version(request: bytes) -> str | None:
    """The ``cniVersion`` string of a JSON object ``request``; None when it has none or is no object."""
    body = request.strip(_JSON_SPACE)
    if not body:
        return None
    inner = body[1:-1]
    if body[:1] == b"{" and body[-1:] == b"}" and not inner.strip(_JSON_SPACE):
        return None  # {}
    key, colon, value = inner.partition(b":")
    value = value.strip(_JSON_SPACE)
    if (body[:1] == b"{" and body[-1:] == b"}" and colon and key.strip(_JSON_SPACE) == b'"cniVersion"'
            and len(value) > 2 and value[:1] == value[-1:] == b'"' and _VERSION_CHARS.issuperset(value[1:-1])):
        return value[1:-1].decode()
    return _requested_version_json(request)


def _requested_version_json(request: bytes) -> str | None:
    import json

    try:
        parsed = json.loads(request)
    except (ValueError, RecursionError):
        return None
    version = parsed.get("cniVersion") if isinstance(parsed, dict) else None
    return version if isinstance(version, str) else None
