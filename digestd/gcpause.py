"""The cyclic garbage collector paused around bulk work that builds no cycles.

Parsing a large dump or matching thousands of papers allocates hundreds of thousands of small
objects (strings, tuples, lists, frozen records) that form no reference cycles; every
collection those allocations trigger walks the growing heap for nothing. Measured, that walk was
a fifth of the parse time of a 50,000-paper dump and more than half of preparing papers for
matching. Reference counting still frees everything as usual while the collector is off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off inside the block (left alone if something else turned it off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
