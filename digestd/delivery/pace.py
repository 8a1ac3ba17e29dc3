"""A rate limit that several connections share: `smtp.rate_limit` messages per second in all."""

from __future__ import annotations

import threading
import time


class Pacer:
    """Hands out send slots 1/rate seconds apart, whichever thread asks; 0 means no limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            # the slot is reserved under the lock; the sleep happens outside it, so the
            # threads wait for their own slots side by side
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.rate
        if slot > now:
            time.sleep(slot - now)
