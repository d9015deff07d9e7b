"""Serve TCP (accept and close) and UDP (echo) until killed: ``serve.py ADDR,ADDR PORT PORT...``.

Each address gets its own sockets, so a UDP echo leaves from the address
the datagram came to (a wildcard socket would answer from the routed
address, which conntrack would not see as a reply).
"""

from __future__ import annotations

import socket
import sys
import threading


def _socket(addr: str, kind: socket.SocketKind, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s


def tcp(addr: str, port: int) -> None:
    with _socket(addr, socket.SOCK_STREAM, port) as s:
        s.listen(128)
        while True:
            conn, _ = s.accept()
            conn.close()


def udp(addr: str, port: int) -> None:
    with _socket(addr, socket.SOCK_DGRAM, port) as s:
        while True:
            data, peer = s.recvfrom(64)
            s.sendto(data, peer)


def main() -> None:
    addresses = sys.argv[1].split(",")
    for port in map(int, sys.argv[2:]):
        for addr in addresses:
            for serve in (tcp, udp):
                threading.Thread(target=serve, args=(addr, port), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
