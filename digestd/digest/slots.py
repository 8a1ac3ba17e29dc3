"""A part's personal lines encoded once per body, with slots where each subscriber's token goes.

Most lines that differ between two subscribers of one body differ only in the private token
inside a link (a paper's "?reader=<token>", the feedback, manage and unsubscribe URLs); the
rest of each such link is the same for everybody. Quoted-printable encoding is a left-to-right
pass whose only state is the column (see tests/test_wire.py), and a token's characters
(``[A-Za-z0-9_-]``) are each written as themselves. So for a given token length and given
text around the tokens, the encoded lines are the same bytes for every subscriber with the
token's characters at the same places, soft line breaks included. `TokenLines` encodes each
line once with a marker character standing in for each token character, keeps the result
as a bytes template with a slot for each run of markers, and fills it by slicing the token.
The column is reset at every line end, so each line is encoded alone and the result kept
for the process: a paper's link lines are the same in every body that shows the paper, and
a new body mostly joins lines encoded for earlier ones.
Lines with another personal value (a name, an address, the greeting) are encoded for each
message as before; they are few.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Mapping, Sequence

#: tokens whose characters quoted-printable writes as themselves, and html.escape keeps
TOKEN = re.compile(r"[A-Za-z0-9_-]+")
#: characters that may stand in for a token's (written as themselves; not hex digits or "=")
_MARKERS = "~^`|!#$*@;:?/+,<>[]{}()'\"abcdefghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ"
#: where a token's place is noted before the marker is chosen
_HOLE = "\x00"
#: a line encoded per message, until its marker is chosen
_SLOW = "\x01"


class _Shapes(dict[str, str]):
    """Format values: a field's shape, or the mark of a line encoded per message."""

    def __missing__(self, key: str) -> str:
        return _SLOW


class TokenLines:
    """One part's personal lines for one shape of values (see `shape`): a bytes template of
    the lines between `fixed` chunks, the token slices that fill it, and the lines left to
    encode per message."""

    __slots__ = ("_cuts", "_pick", "slow_source", "template")

    def __init__(
        self, fixed: Sequence[bytes], source: str, shapes: Mapping[str, str | None],
        length: int,
    ):
        """`fixed` and `source` are a part's (`_Part.fixed`, `_Part.lines`); `shapes` each
        field's value with the token's places marked, None for a value without the token."""
        if _HOLE in source or _SLOW in source:
            raise ValueError("the text holds the characters that mark places")
        values = _Shapes({field: value for field, value in shapes.items() if value is not None})
        texts = source.format_map(values).split("\n")[:-1]
        sources = source.split("\n")[:-1]
        if len(texts) != len(sources) or len(fixed) != len(texts) + 1:
            raise ValueError("a value holds a line end")
        whole = [fixed[0]]
        # (0, start, end): a slice of the token; (k, 0, None): the k-th slow line, whole
        recipe: list[tuple[int, int, int | None]] = []
        slow: list[str] = []
        for text, line_source, after in zip(texts, sources, fixed[1:], strict=True):
            if _SLOW in text:  # this line is encoded per message
                slow.append(line_source + "\n")
                recipe.append((len(slow), 0, None))
                whole += [b"%s\r\n", after]
                continue
            template, slices = _line(text, length)
            whole += [template, after]
            recipe += slices
        self.template = b"".join(whole)
        #: the slow lines as one format source, each ending in a newline
        self.slow_source = "".join(slow)
        # a body has hundreds of slots but few different token slices (the whole token, and
        # the two halves of one cut by a soft break): each slot picks from those and the slow
        # lines by index, in C, instead of a slice per slot in Python
        self._cuts = sorted({(start, end) for source, start, end in recipe if source == 0})
        at = {cut: i for i, cut in enumerate(self._cuts)}
        self._pick = [
            at[start, end] if source == 0 else len(self._cuts) + source - 1
            for source, start, end in recipe
        ]

    def arguments(
        self, token: bytes, values: Mapping[str, str]
    ) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """What fills the template for one subscriber: token slices and slow lines; and the
        same for the template dot-stuffed for SMTP (`dot_stuffed`), where a slow line that
        starts with "." gets another one (a token slice never starts a line with one)."""
        pool = [token[start:end] for start, end in self._cuts]
        if not self.slow_source:
            plain = tuple(map(pool.__getitem__, self._pick))
            return plain, plain
        encoded = binascii.b2a_qp(self.slow_source.format_map(values).encode(), istext=True)
        lines = [
            line.replace(b"=\r\x00", b"=\r\n")
            for line in encoded.replace(b"=\n", b"=\r\x00").split(b"\n")[:-1]
        ]
        stuffed = pool + [dot_stuffed(line) for line in lines]
        pool += lines
        return tuple(map(pool.__getitem__, self._pick)), tuple(map(stuffed.__getitem__, self._pick))


def dot_stuffed(lines: bytes) -> bytes:
    """Lines as SMTP's DATA carries them (RFC 5321 4.5.2): one that starts with "." gets
    another; `lines` starts a line. What a template and its slot values are quoted with once,
    so that no message is scanned for them (a tenth of a millisecond for 96 KiB)."""
    if lines.startswith(b"."):
        lines = b"." + lines
    return lines.replace(b"\n.", b"\n..")


@functools.lru_cache(maxsize=16_384)
def _line(text: str, length: int) -> tuple[bytes, tuple[tuple[int, int, int], ...]]:
    """One line with the token's places marked by `_HOLE`, encoded: its bytes template
    ("%" doubled, a "%s" per token slice, ending in CRLF) and the token slice of each slot.
    Raises ValueError when the places do not add up to whole tokens."""
    marker = next((c for c in _MARKERS if c not in text), None)
    if marker is None:
        raise ValueError("no marker character left")
    encoded = binascii.b2a_qp((text.replace(_HOLE, marker * length) + "\n").encode(), istext=True)
    # soft breaks as they are sent; the line's own end as CRLF
    blob = encoded[:-1].replace(b"%", b"%%").replace(b"=\n", b"=\r\n") + b"\r\n"
    marker_byte = marker.encode()
    out: list[bytes] = []
    slices: list[tuple[int, int, int]] = []
    offset = 0  # where in a token the next marker is
    position = 0
    found = blob.find(marker_byte)
    while found >= 0:
        end = found
        while blob[end : end + 1] == marker_byte:
            end += 1
        out.append(blob[position:found])
        left = end - found
        # a token is cut where a soft break falls inside it
        while left:
            take = min(left, length - offset)
            out.append(b"%s")
            slices.append((0, offset, offset + take))
            offset = (offset + take) % length
            left -= take
        position = end
        found = blob.find(marker_byte, position)
    if offset:
        raise ValueError("markers do not add up to whole tokens")
    out.append(blob[position:])
    return b"".join(out), tuple(slices)


def shape(values: Mapping[str, str], fields: Sequence[str], token: str) -> tuple[str | None, ...]:
    """Each field's value with the token's places marked, None when the token is not in it
    (or when the value holds a character used for marking)."""
    return tuple(
        values[field].replace(token, _HOLE)
        if token in values[field] and _HOLE not in values[field] and _SLOW not in values[field]
        else None
        for field in fields
    )
