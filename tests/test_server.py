"""The loopback socket the tests and benchmarks serve on."""

from __future__ import annotations

import socket

from digestd.web.server import loopback_socket


def test_loopback_socket_names_tcp_so_asyncio_sets_nodelay() -> None:
    # asyncio's transports call TCP_NODELAY only for sockets whose proto is IPPROTO_TCP; a
    # socket made with proto 0 serves every small response after a delayed ACK.
    sock = loopback_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
