"""An aiosmtpd sink in a process of its own, for the delivery benchmarks.

In the measuring process, a sink would compete for the GIL with both sides of a comparison
(digestd's sender and the bare smtplib loop), so it runs in a spawned child. It keeps only a
count of messages and bytes, in shared memory the parent reads, plus its own CPU time.

    with SinkProcess() as sink:
        ... send to 127.0.0.1:sink.port ...
        print(sink.count, sink.bytes, sink.cpu_seconds())
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from types import TracebackType
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, count: Any, size: Any, ready: Any, stop: Any) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            # one lock round-trip per message; the values are only read between runs
            with count.get_lock():
                count.value += 1
                size.value += len(envelope.content)
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class SinkProcess:
    """A counting SMTP sink on a free loopback port, served by a child process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = free_port()
        self._count = context.Value("q", 0)
        self._bytes = context.Value("q", 0)
        self._ready = context.Event()
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve,
            args=(self.port, self._count, self._bytes, self._ready, self._stop),
            name="smtp-sink",
            daemon=True,
        )

    @property
    def count(self) -> int:
        return int(self._count.value)

    @property
    def bytes(self) -> int:
        return int(self._bytes.value)

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    def cpu_seconds(self) -> float:
        """User + system CPU of the sink process so far (Linux /proc)."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def start(self, timeout: float = 120.0) -> SinkProcess:
        self._process.start()
        if not self._ready.wait(timeout):
            self._process.kill()
            raise TimeoutError("the SMTP sink did not start")
        # the controller is listening once ready is set; give the accept loop a moment
        time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> SinkProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
