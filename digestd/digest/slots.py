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
import string
from collections.abc import Mapping, Sequence

#: tokens whose characters quoted-printable writes as themselves, and html.escape keeps
TOKEN = re.compile(r"[A-Za-z0-9_-]+")
#: characters that may stand in for a token's (written as themselves; not hex digits or "=")
_MARKERS = "~^`|!#$*@;:?/+,<>[]{}()'\"abcdefghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ"
#: where a token's place is noted before the marker is chosen
_HOLE = "\x00"
#: a line encoded per message, until its marker is chosen
_SLOW = "\x01\n"


def parse_lines(source: str) -> list[tuple[list[str], list[str]]]:
    """The personal lines of a format source (`_Part.lines`): for each line, its texts and
    the fields between them (texts has one more item; the last ends with the newline)."""
    lines: list[tuple[list[str], list[str]]] = [([""], [])]
    for literal, field, _, _ in string.Formatter().parse(source):
        while "\n" in literal:
            head, literal = literal.split("\n", 1)
            lines[-1][0][-1] += head + "\n"
            lines.append(([""], []))
        lines[-1][0][-1] += literal
        if field is not None:
            lines[-1][1].append(field)
            lines[-1][0].append("")
    if lines[-1] == ([""], []):
        lines.pop()
    return lines


class TokenLines:
    """One part's personal lines for one shape of values (see `shape`): a bytes template of
    the lines between `fixed` chunks, the token slices that fill it, and the lines left to
    encode per message."""

    __slots__ = ("recipe", "slow_source", "template")

    def __init__(
        self, fixed: Sequence[bytes], lines: Sequence[tuple[list[str], list[str]]],
        shapes: Mapping[str, str | None], length: int,
    ):
        texts: list[str] = []
        slow: list[str] = []
        for parts, fields in lines:
            if all(shapes.get(field) is not None for field in fields):
                pieces = [parts[0]]
                for field, after in zip(fields, parts[1:], strict=True):
                    pieces += [shapes[field] or "", after]
                texts.append("".join(pieces))
            else:
                texts.append(_SLOW)  # this line is encoded per message
                slow.append(_format_source(parts, fields))
        joined = "".join(texts)
        holes = sum(
            (shapes[field] or "").count(_HOLE)
            for parts, fields in lines
            if all(shapes.get(field) is not None for field in fields)
            for field in fields
        )
        if joined.count(_HOLE) != holes or joined.count(_SLOW[0]) != len(slow):
            raise ValueError("the text holds the characters that mark places")
        marker = next((c for c in _MARKERS if c not in joined), None)
        if marker is None:
            raise ValueError("no marker character left")
        slow_line = next(c for c in _MARKERS if c != marker and c not in joined)
        joined = joined.replace(_SLOW, slow_line + "\n").replace(_HOLE, marker * length)
        encoded = binascii.b2a_qp(joined.encode("utf-8"), istext=True)
        encoded_lines = encoded.replace(b"=\n", b"=\r\x00").split(b"\n")[:-1]
        runs = re.compile(re.escape(marker.encode()) + b"+")
        out: list[bytes] = []
        #: (0, start, end): a slice of the token; (k, 0, None): the k-th slow line, whole
        recipe: list[tuple[int, int, int | None]] = []
        slow_count = 0
        offset = 0  # where in a token the next marker is
        for index, line in enumerate(encoded_lines):
            out.append(fixed[index])
            if line == slow_line.encode():
                slow_count += 1
                out.append(b"%s\r\n")
                recipe.append((slow_count, 0, None))
                continue
            line = line.replace(b"%", b"%%").replace(b"=\r\x00", b"=\r\n")
            position = 0
            for run in runs.finditer(line):
                out.append(line[position : run.start()])
                left = run.end() - run.start()
                while left:
                    take = min(left, length - offset)
                    out.append(b"%s")
                    recipe.append((0, offset, offset + take))
                    offset = (offset + take) % length
                    left -= take
                position = run.end()
            out.append(line[position:] + b"\r\n")
        out.append(fixed[len(encoded_lines)])
        if offset:
            raise ValueError("markers do not add up to whole tokens")
        self.template = b"".join(out)
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
    """Each field's value with the token's places marked, None when the token is not in it."""
    return tuple(
        values[field].replace(token, _HOLE) if token in values[field] else None
        for field in fields
    )


def _format_source(parts: Sequence[str], fields: Sequence[str]) -> str:
    out = [parts[0].replace("{", "{{").replace("}", "}}")]
    for field, after in zip(fields, parts[1:], strict=True):
        out += ["{" + field + "}", after.replace("{", "{{").replace("}", "}}")]
    return "".join(out)
