"""Kill a digest sender at random moments, over and over, and count what the recipients got.

Used by tests/test_queue_crash.py (a few kills, bounded) and benchmarks/crash_duplicates.py
(many kills, to measure the duplicate rate per crash that the README quotes).

The SMTP server is a separate process (``python tests/crashloop.py sink PORT LOG EVERY``): it
answers every EVERY-th DATA with 451 and, before answering 250, appends the recipient and
Message-ID to LOG, so the log holds everything the server accepted even when the sender dies
right after. Each sender is a fork of the calling process (no start-up cost, every module
already imported), which runs `send_pending` in a loop and is killed with SIGKILL a random
moment after the server accepted its first message. Each sender's clock starts
`clock_step` seconds after the previous one's, as after a watchdog restart, so the dead
sender's leases have run out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


@dataclasses.dataclass
class CrashResult:
    kills: int
    #: kills that landed while the sender was still sending (not after it had finished)
    effective_kills: int
    accepted: list[tuple[str, str]]  # (recipient, Message-ID), in the order accepted

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in Counter(mid for _, mid in self.accepted).values())


class Sink:
    """The 451-now-and-then SMTP server (every=0: never), in its own process."""

    def __init__(self, port: int, log: Path, every: int):
        self.log = log
        log.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "sink", str(port), str(log), str(every)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import socket

        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the crash-test SMTP server did not start") from None
                time.sleep(0.05)

    def accepted(self) -> list[tuple[str, str]]:
        lines = self.log.read_text().splitlines()
        return [tuple(line.split(" ", 1)) for line in lines if " " in line]  # type: ignore[misc]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _sender(database_url: str, config: object, now: dt.datetime) -> None:
    """The forked child: send until nothing is left (or until killed). Never returns."""
    try:
        from digestd.delivery import send_pending
        from digestd.runtime import Runtime
        from digestd.store import Store

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        started = time.monotonic()
        store = Store.open(database_url, migrate=False)
        runtime = Runtime.open(config, store=store)  # type: ignore[arg-type]
        while True:
            clock = now + dt.timedelta(seconds=time.monotonic() - started)
            report = send_pending(runtime, clock)
            if report.sent or report.retrying or report.deferred:
                continue
            due = store.next_delivery_due(clock)
            if due is None:
                break
            now += due - clock + dt.timedelta(seconds=1)  # wait out the backoff, virtually
        os._exit(0)
    except BaseException:
        os._exit(3)


def kill_loop(
    database_url: str, config: object, sink: Sink, *, kills: int, seed: int,
    max_delay: float = 0.05, clock_step: float = 60.0, finish: bool = True,
) -> CrashResult:
    """Start and SIGKILL `kills` senders, then (with `finish`) let one run to the end."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    effective = 0
    for _ in range(kills):
        before = len(sink.accepted())
        pid = os.fork()
        if pid == 0:
            _sender(database_url, config, now)
        deadline = time.monotonic() + 20
        started = False
        while time.monotonic() < deadline:
            if len(sink.accepted()) > before:
                started = True
                break
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                pid = 0  # it finished: nothing was left to send
                break
            time.sleep(0.002)
        if pid:
            time.sleep(rng.uniform(0, max_delay))
            finished = os.waitpid(pid, os.WNOHANG) != (0, 0)
            if not finished:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                effective += started
        now += dt.timedelta(seconds=clock_step)
    if finish:
        pid = os.fork()
        if pid == 0:
            _sender(database_url, config, now)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("the last sender failed")
    return CrashResult(kills, effective, sink.accepted())


def _serve(port: int, log: Path, every: int) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        data = 0

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            Handler.data += 1
            if every and Handler.data % every == 0:
                return "451 4.3.0 Try again later"
            text = envelope.content.decode("utf-8", "replace")
            message_id = next(
                (line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.lower().startswith("message-id:")), "?",
            )
            with log.open("a") as out:
                for rcpt in envelope.rcpt_tos:
                    out.write(f"{rcpt} {message_id}\n")
            return "250 Message accepted"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["sink"]:
        _serve(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
