"""What both etcd clients (gateway ``etcd.py``, gRPC ``etcd_grpc.py``) share: endpoints, TLS checks, wording.

``parse_endpoints`` reads the ``--etcd-endpoints`` forms; ``check_tls``
refuses certificate options that cannot work; ``short_reason`` turns a
library's long failure text into the few words users see in
``etcd is unreachable at ... (what, tried for Ns): <reason>``, and
``permanent`` says when such a reason is one that retrying cannot fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from pycni.cluster.kv import KVUnavailable
from pycni.spec.errors import InvalidConfig

__all__ = ["DEFAULT_ENDPOINT", "check_tls", "parse_endpoints", "permanent", "short_reason", "thread_in_process_netns",
           "unreachable"]

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"

TLS_VERIFY = "TLS certificate verification failed (is --etcd-cafile the CA that signed etcd's certificate?)"
TLS_REFUSED = "etcd refused the client certificate (--etcd-certfile/--etcd-keyfile)"


def parse_endpoints(endpoints: str | Sequence[str]) -> list[tuple[str, str, int]]:
    """``"http://a:2379,https://[::1]:2379"`` or a list of them -> [(scheme, host, port)]."""
    items = endpoints.split(",") if isinstance(endpoints, str) else [e for part in endpoints for e in part.split(",")]
    out = []
    for raw in (item.strip() for item in items):
        if not raw:
            continue
        url = urlsplit(raw if "://" in raw else f"http://{raw}")
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise InvalidConfig(f"etcd endpoint: {raw!r} is not a URL like http://127.0.0.1:2379")
        try:
            port = url.port or 2379
        except ValueError:
            raise InvalidConfig(f"etcd endpoint: {raw!r} has a bad port") from None
        out.append((url.scheme, url.hostname, port))
    if not out:
        raise InvalidConfig("etcd endpoint: none given")
    return out


def thread_in_process_netns() -> bool:
    """False in a thread that entered another network namespace (``pycni.net.netns.run_in_netns``).

    gRPC connects from threads of its own, which stay in the namespace of
    the thread that started them: a gRPC client made in such a thread would
    reach the address in the wrong namespace (another lab's etcd, or out
    of the machine). The gateway client connects from the calling thread.
    """
    try:
        here = os.stat("/proc/thread-self/ns/net")
        process = os.stat(f"/proc/{os.getpid()}/ns/net")
    except OSError:  # no /proc: nothing to compare, the plain case
        return True
    return (here.st_dev, here.st_ino) == (process.st_dev, process.st_ino)


def endpoint_url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def check_tls(parsed: Sequence[tuple[str, str, int]], ca_file: str | None, cert_file: str | None,
              key_file: str | None) -> None:
    if (cert_file is None) != (key_file is None):
        raise InvalidConfig("etcd TLS: a client certificate needs its key (--etcd-certfile with --etcd-keyfile)")
    if (ca_file or cert_file) and any(scheme != "https" for scheme, _, _ in parsed):
        raise InvalidConfig("etcd TLS: certificates given but an endpoint is not https://")


def unreachable(urls: Sequence[str], what: str, seconds: float, reason: str) -> KVUnavailable:
    return KVUnavailable(f"etcd is unreachable at {', '.join(urls)} ({what}, tried for {seconds:.0f}s): {reason}")


def permanent(reason: str) -> bool:
    """A failure that retrying the same endpoint cannot fix (TLS set up wrong)."""
    return reason.startswith(("TLS", "etcd refused the client"))


_NEEDLES = (("refused", "connection refused"), ("timed out", "timed out"), ("Deadline Exceeded", "timed out"),
            ("Name or service not known", "unknown host"), ("No route to host", "no route to host"),
            ("CERTIFICATE_VERIFY_FAILED", TLS_VERIFY),
            ("BAD_CERTIFICATE", TLS_REFUSED), ("CERTIFICATE_REQUIRED", TLS_REFUSED),
            ("SSLError", "TLS handshake failed"), ("Ssl handshake failed", "TLS handshake failed"),
            # gRPC, TLS 1.3: a refused client certificate arrives as an alert after the client's handshake
            ("TSI_DATA_CORRUPTED", "TLS handshake failed"),
            ("reset by peer", "connection reset"))


def short_reason(text: str, fallback: str) -> str:
    """The useful part of a client's failure text ("connection refused", not the library's whole story)."""
    for needle, short in _NEEDLES:
        if needle in text:
            if short.startswith("TLS handshake"):
                reason = re.search(r"\[SSL: ([A-Z0-9_]+)\]|(EOF occurred[^'\"]*)|SSL_ERROR_[A-Z_]+|TSI_[A-Z_]+", text)
                detail = (reason.group(1) or reason.group(2) or reason.group(0)) if reason else "see etcd log"
                short += f" ({detail}; check --etcd-cafile, --etcd-certfile, --etcd-keyfile)"
            return short
    return text.splitlines()[0][:200] if text else fallback
