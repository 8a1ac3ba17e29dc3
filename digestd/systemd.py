"""The process's side of systemd and of its own main loop: sd_notify, the watchdog interval,
and a wake-up pipe that signal handlers and job threads may poke."""

from __future__ import annotations

import logging
import os
import select
import socket

log = logging.getLogger("digestd.daemon")


class SystemdNotifier:
    """The sd_notify protocol: one datagram per state change to $NOTIFY_SOCKET.

    A few lines of socket code; no dependency needed. Silent when not run by systemd.
    """

    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        self.address = address or None
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, *states: str) -> None:
        if self._socket is None or self.address is None:
            return
        try:
            # Never wait: a receiver that does not read (its queue holds ~10 datagrams) must
            # not hang the daemon, least of all on its way out.
            self._socket.sendto("\n".join(states).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            log.warning("sd_notify failed states=%s error=%r", ",".join(states), str(exc))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class Waker:
    """Wakes the main loop from a job thread or a signal handler: a byte down a pipe.

    Not a threading.Event: its set() takes a lock, and a signal handler calling it while the
    main thread was inside that Event's wait() or clear() waited on its own thread forever.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False

    def set(self) -> None:
        if self._closed:  # its descriptor number may belong to another file by now
            return
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop is woken already
        except OSError:
            pass  # closed at shutdown

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._read], [], [], timeout)
        return bool(ready)

    def clear(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._read)
            os.close(self._write)


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec, in seconds, when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
