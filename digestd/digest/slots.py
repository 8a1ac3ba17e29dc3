"""A part's personal lines encoded once per body, with slots where each subscriber's token goes.

Most lines that differ between two subscribers of one body differ only in the private token
inside a link (a paper's "?reader=<token>", the feedback, manage and unsubscribe URLs); the
rest of each such link is the same for everybody. Quoted-printable encoding is a left-to-right
pass whose only state is the column (see tests/test_wire.py), and a token's characters
(``[A-Za-z0-9_-]``) are each written as themselves. So for a given token length and given
text around the tokens, the encoded lines are the same bytes for every subscriber with the
token's characters at the same places, soft line breaks included. `TokenLines` encodes the
lines once with a marker character standing in for each token character, keeps the result
as a bytes template with a slot for each run of markers, and fills it by slicing the token.
Lines with another personal value (a name, an address, the greeting) are encoded for each
message as before; they are few.
"""

from __future__ import annotations

import binascii
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

    __slots__ = ("recipe", "slow_source", "template")

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
        if len(texts) != len(sources):
            raise ValueError("a value holds a line end")
        slow: list[str] = []
        for index, text in enumerate(texts):
            if _SLOW in text:  # this line is encoded per message
                texts[index] = _SLOW
                slow.append(sources[index] + "\n")
        joined = "\n".join(texts) + "\n"
        free = (c for c in _MARKERS if c not in joined)  # each test reads the text: stop at two
        marker, slow_line = next(free, None), next(free, None)
        if marker is None or slow_line is None:
            raise ValueError("no marker character left")
        joined = joined.replace(_SLOW, slow_line).replace(_HOLE, marker * length)
        encoded = binascii.b2a_qp(joined.encode("utf-8"), istext=True)
        # "%" doubled for the template; soft breaks as they are sent, the lines' own ends
        # as a byte quoted-printable never writes, for the fixed text to go there at the end
        blob = (
            encoded.replace(b"%", b"%%").replace(b"=\n", b"=\r\x00").replace(b"\n", b"\x02")
            .replace(b"\x00", b"\n")
        )
        marker_byte, slow_byte = marker.encode(), slow_line.encode()
        run_of = re.compile(re.escape(marker_byte) + b"+")
        out: list[bytes] = []
        #: (0, start, end): a slice of the token; (k, 0, None): the k-th slow line, whole
        recipe: list[tuple[int, int, int | None]] = []
        slow_count = 0
        offset = 0  # where in a token the next marker is
        position = 0
        # bytes.find, not a regular expression's search: the text between the places is most
        # of it, and find skips it many times faster
        next_marker, next_slow = blob.find(marker_byte), blob.find(slow_byte)
        while next_marker >= 0 or next_slow >= 0:
            if next_slow >= 0 and (next_marker < 0 or next_slow < next_marker):
                out += [blob[position:next_slow], b"%s"]
                slow_count += 1
                recipe.append((slow_count, 0, None))
                position = next_slow + 1
                next_slow = blob.find(slow_byte, position)
                continue
            run = run_of.match(blob, next_marker)
            assert run is not None
            out.append(blob[position:next_marker])
            left = run.end() - next_marker
            if left == length and not offset:  # a whole token, as most are
                out.append(b"%s")
                recipe.append((0, 0, length))
            else:
                while left:
                    take = min(left, length - offset)
                    out.append(b"%s")
                    recipe.append((0, offset, offset + take))
                    offset = (offset + take) % length
                    left -= take
            position = run.end()
            next_marker = blob.find(marker_byte, position)
        out.append(blob[position:])
        lines = b"".join(out).split(b"\x02")[:-1]
        whole = [fixed[0]]
        for line, after in zip(lines, fixed[1:], strict=True):
            whole += [line, b"\r\n", after]
        if offset or slow_count != len(slow):
            raise ValueError("markers do not add up to whole tokens")
        self.template = b"".join(whole)
        self.recipe = recipe
        #: the slow lines as one format source, each ending in a newline
        self.slow_source = "".join(slow)

    def arguments(self, token: bytes, values: Mapping[str, str]) -> list[bytes]:
        """What fills the template for one subscriber: token slices and slow lines."""
        pool = [token]
        if self.slow_source:
            encoded = binascii.b2a_qp(self.slow_source.format_map(values).encode(), istext=True)
            pool += [
                line.replace(b"=\r\x00", b"=\r\n")
                for line in encoded.replace(b"=\n", b"=\r\x00").split(b"\n")[:-1]
            ]
        return [pool[source][start:end] for source, start, end in self.recipe]


def shape(values: Mapping[str, str], fields: Sequence[str], token: str) -> tuple[str | None, ...]:
    """Each field's value with the token's places marked, None when the token is not in it
    (or when the value holds a character used for marking)."""
    return tuple(
        values[field].replace(token, _HOLE)
        if token in values[field] and _HOLE not in values[field] and _SLOW not in values[field]
        else None
        for field in fields
    )
