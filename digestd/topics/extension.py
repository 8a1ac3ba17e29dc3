"""The optional C extension (``_program.c``), when it is built, current and not turned off.

Its own module, importing nothing of digestd, so that the modules that cut and read words
(.words, .packed) and the query compiler (.native) can all use it. :data:`helpers` names the
extension's functions; each is None where the extension cannot be used, and the caller then
does the same work in Python.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

__all__ = ["AVAILABLE", "VERSION", "helpers", "module"]

#: the layout of the extension's arguments digestd writes (_program.c's PROGRAM_VERSION)
VERSION = 7

try:
    from digestd.topics import _program as module  # type: ignore[attr-defined]
except ImportError:  # not built: no compiler at install time
    module = None

AVAILABLE = (
    module is not None
    and getattr(module, "VERSION", None) == VERSION
    and os.environ.get("DIGESTD_PURE_PYTHON", "") in ("", "0")
)

_NAMES = ("common", "cut", "fits")
#: ``common(line, stems)``: the indexes of the sorted tuple ``stems`` that a sorted stems line
#: (Document.stems_line) holds; ``cut(text)``: the words and clause starts of a text, as
#: words._clause_words answers them (the starts as a list); ``fits(surfaces, joined)``: whether
#: a kept part has as many words as stems (see .packed)
helpers: Any = SimpleNamespace(
    **{name: getattr(module, name) if AVAILABLE else None for name in _NAMES}
)
