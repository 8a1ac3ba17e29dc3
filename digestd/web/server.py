"""The uvicorn server for a runtime, and a way to run it in a background thread.

The daemon runs `make_server(runtime).run` in a thread beside its scheduler; tests and the
benchmarks use `ServerThread` with a socket bound beforehand to a free loopback port, so there is
no window in which another process could take the port.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from digestd.runtime import Runtime
from digestd.web.app import create_app

#: seconds open connections get to finish when the server stops
GRACEFUL_SHUTDOWN = 5


def make_server(runtime: Runtime, *, access_log: bool = False) -> uvicorn.Server:
    """A uvicorn server for the app, listening on the configured http.address."""
    host, port = runtime.config.http_host_port
    config = uvicorn.Config(
        create_app(runtime),
        host=host,
        port=port,
        lifespan="on",
        # digestd configures logging itself (key=value lines, journald-aware)
        log_config=None,
        access_log=access_log,
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
