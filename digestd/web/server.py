"""The uvicorn server for a runtime, and a way to run it in a background thread.

The daemon runs `make_server(runtime).run` in a thread beside its scheduler; tests and the
benchmarks use `ServerThread` with a socket bound beforehand to a free loopback port, so there is
no window in which another process could take the port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from digestd.metrics import Metrics
from digestd.runtime import Runtime
from digestd.web.app import create_app

#: seconds open connections get to finish when the server stops
GRACEFUL_SHUTDOWN = 5


#: bytes of request line and header fields at most (h11's own limit for an incomplete head)
MAX_HEADER_BYTES = 16 * 1024


class HttpProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, answering 431 (not 400) to a request whose header is
    larger than MAX_HEADER_BYTES: the client learns what to shorten.

    h11 enforces its limit only while a head is incomplete; a large head that arrives in one
    piece is checked here once parsed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._error_status = 400
        next_event = self.conn.next_event

        def remembering_next_event() -> Any:
            try:
                event = next_event()
            except h11.RemoteProtocolError as exc:
                self._error_status = exc.error_status_hint
                raise
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > MAX_HEADER_BYTES:
                    self._error_status = 431
                    raise h11.RemoteProtocolError("request header too large", 431)
            return event

        self.conn.next_event = remembering_next_event  # type: ignore[method-assign]

    def send_400_response(self, msg: str) -> None:
        if self._error_status != 431:
            super().send_400_response(msg)
            return
        event = h11.Response(
            status_code=431, reason=b"Request Header Fields Too Large",
            headers=[(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        )
        body = b"Request header fields too large.\n"
        for part in (event, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(part))
        self.transport.close()


def make_server(
    runtime: Runtime,
    *,
    metrics: Metrics | None = None,
    daemon_health: Callable[[], tuple[str, str]] | None = None,
) -> uvicorn.Server:
    """A uvicorn server for the app, listening on the configured http.address."""
    host, port = runtime.config.http_host_port
    config = uvicorn.Config(
        create_app(runtime, metrics=metrics, daemon_health=daemon_health),
        host=host,
        port=port,
        lifespan="on",
        http=HttpProtocol,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # digestd configures logging itself (key=value lines, journald-aware), and its own
        # access log (log.access_log) names routes rather than paths that hold tokens
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    return uvicorn.Server(config)


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1, for a server to listen on.

    The protocol is named explicitly: asyncio sets TCP_NODELAY on accepted connections only when
    the listening socket's `proto` is IPPROTO_TCP, and without it every small response that
    follows a write waits for the client's delayed ACK (about 40 ms each).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServerThread:
    """Runs a uvicorn server in a daemon thread; `start()` returns once it accepts connections.

    Signal handlers are left alone: uvicorn installs them only in the main thread.
    """

    def __init__(self, server: uvicorn.Server, sock: socket.socket | None = None) -> None:
        self.server = server
        self.sock = sock
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.sock is not None:
            host, port = self.sock.getsockname()[:2]
        else:
            host, port = self.server.config.host, self.server.config.port
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        sockets = [self.sock] if self.sock is not None else None
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": sockets}, name="http", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the HTTP server stopped during startup; see the log")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the HTTP server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        if self.sock is not None:
            self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start() if self.thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
