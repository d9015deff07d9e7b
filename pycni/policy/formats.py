"""Kubernetes' string formats (names, label keys and values, port names, CIDRs, IPs) as pure checks.

Contract: each ``is_*`` function returns the reasons a value is invalid
(an empty tuple when it is valid), worded as Kubernetes' apimachinery words
them, so ``pycni.policy.validate`` can put them after ``Invalid value: "x": ``
exactly as the API server would. String checks are cached: the same names,
labels and CIDRs recur across thousands of objects. CIDRs are checked as the API server does
with strict IP/CIDR validation (KEP-4858): no leading zeros, no IPv4-mapped
IPv6, no bits set beyond the prefix length, so a CIDR means one thing to
every reader.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

__all__ = [
    "DNS1123_LABEL_MAX",
    "DNS1123_SUBDOMAIN_MAX",
    "is_cidr",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_ip",
    "is_label_key",
    "is_label_value",
    "is_port_name",
    "is_port_num",
    "parse_cidr",
]

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_MAX = 63
PORT_NAME_MAX = 15

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, double space after the first example included."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    listed = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {listed}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


@lru_cache(maxsize=8192)
def is_dns1123_label(value: str) -> tuple[str, ...]:
    errors = []
    if len(value) > DNS1123_LABEL_MAX:
        errors.append(_max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return tuple(errors)


@lru_cache(maxsize=8192)
def is_dns1123_subdomain(value: str) -> tuple[str, ...]:
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errors.append(_max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return tuple(errors)


@lru_cache(maxsize=8192)
def is_label_key(value: str) -> tuple[str, ...]:
    """A label key (Kubernetes' "qualified name"): an optional DNS subdomain prefix and '/', then a name."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + message for message in is_dns1123_subdomain(prefix)]
    else:
        return (
            "a valid label key "
            + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > LABEL_MAX:
        errors.append("name part " + _max_len_error(LABEL_MAX))
    if not _LABEL_KEY_RE.fullmatch(name):
        errors.append("name part " + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return tuple(errors)


@lru_cache(maxsize=8192)
def is_label_value(value: str) -> tuple[str, ...]:
    errors = []
    if len(value) > LABEL_MAX:
        errors.append(_max_len_error(LABEL_MAX))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return tuple(errors)


def is_port_num(port: int) -> tuple[str, ...]:
    return () if 1 <= port <= 65535 else ("must be between 1 and 65535, inclusive",)


@lru_cache(maxsize=8192)
def is_port_name(name: str) -> tuple[str, ...]:
    """An IANA_SVC_NAME (RFC 6335), lower case only, as Kubernetes checks named ports."""
    errors = []
    if len(name) > PORT_NAME_MAX:
        errors.append(_max_len_error(PORT_NAME_MAX))
    if not _PORT_NAME_CHARSET_RE.fullmatch(name):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errors.append("must contain at least one letter (a-z)")
    if "--" in name:
        errors.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return tuple(errors)


_CIDR_EXAMPLE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_IP_EXAMPLE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_LEADING_ZERO_OCTET = re.compile(r"(^|\.)0[0-9]")


def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network ``value`` names, read as leniently as Kubernetes' ParseCIDRSloppy (host bits
    masked, leading zeros dropped), so an ``except`` can be checked against a ``cidr`` that is
    itself reported; None if it is no CIDR at all."""
    return _read_cidr(value)[0]


def is_cidr(value: str) -> tuple[str, ...]:
    return _read_cidr(value)[1]


@lru_cache(maxsize=8192)
def _read_cidr(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network | None, tuple[str, ...]]:
    address, slash, prefix = value.partition("/")
    if not slash or not prefix.isascii() or not prefix.isdigit() or "%" in address:
        return None, (_CIDR_EXAMPLE,)
    leading_zeros = len(prefix) > 1 and prefix.startswith("0")
    if ":" not in address and _LEADING_ZERO_OCTET.search(address):
        leading_zeros = True
        address = ".".join(str(int(octet)) if octet.isdigit() else octet for octet in address.split("."))
    try:
        network = ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        return None, (_CIDR_EXAMPLE,)
    if leading_zeros:
        return network, ("must not have leading 0s in IP or prefix length",)
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        return network, ("must not have an IPv4-mapped IPv6 address",)
    if ipaddress.ip_address(address) != network.network_address:
        return network, ("must not have bits set beyond the prefix length",)
    return network, ()


def is_ip(value: str) -> tuple[str, ...]:
    if "%" in value:
        return (_IP_EXAMPLE,)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return (_IP_EXAMPLE,)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return ("must not be an IPv4-mapped IPv6 address",)
    return ()
