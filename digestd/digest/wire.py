"""Messages as bytes: a digest body serialised once, each subscriber's copy joined from it.

Building and flattening a 70 KiB multipart message with the email package takes about two
milliseconds, yet everybody who receives the same body differs only in four header lines
and in the body lines that hold a personal link. So, once per distinct body, the whole
message is flattened by the email package (`build_message`, `message_bytes`) with markers in
the personal places, and both parts are quoted-printable encoded line by line: runs of lines
without a placeholder become fixed bytes, and only the lines that hold one are encoded again
for each subscriber. binascii's encoder is line-local (where it breaks or escapes depends
only on the line itself: tests/test_wire.py checks it), so the bytes are those the email
package writes for the whole part, and every line stays within 76 characters. For the same
reason a paper's fragment of a body (see digest.fragments), whole lines shared by many bodies,
is encoded once and its bytes reused in every body that holds it.

A subscriber's header lines are written out directly when they are plain ASCII of an
ordinary shape, and folded by the email package otherwise (RFC 2047 for a non-ASCII name).
What this module does not assemble goes through the email package whole: a non-ASCII
address (sent with SMTPUTF8, under another policy), a line break or bare CR in the text.
The result is byte for byte the email package's (tests/test_wire.py compares them).
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import html
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage

from digestd.digest.fragments import Fragment
from digestd.digest.message import (
    POLICY,
    build_message,
    header_text,
    message_bytes,
    parse_from,
    set_address,
    set_header,
)
from digestd.digest.render import PERSONAL_FIELDS, Body, Personal
from digestd.digest.slots import TOKEN, TokenLines, dot_stuffed, shape

#: the policy the SMTP transport flattens with (CRLF); the Maildir one differs only in that
SMTP_POLICY = POLICY.clone(linesep="\r\n")

#: addresses and names whose header line is written out directly; anything else is folded
#: by the email package
_SIMPLE_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9'_-]+(?: [A-Za-z0-9'_-]+)*")
_SIMPLE_ID = re.compile(r"<[A-Za-z0-9.-]+@[A-Za-z0-9.-]+>")
#: printable ASCII without "=?" (which the header parser would read as an encoded word)
_SIMPLE_TEXT = re.compile(r"(?:[!-<>-~ ]|=(?!\?))*")
#: a header line longer than this is left to the email package's folding
LINE_LIMIT = 900
#: what marks the personal places in the once-per-body flattening
_MARK = "digestdwiremark"


@dataclass(frozen=True, slots=True)
class Assembled:
    """A message ready for SMTP: its bytes (CRLF line ends, 7-bit) and its addresses."""

    data: bytes
    #: the From address (the envelope sender unless the caller names another)
    sender: str
    recipients: tuple[str, ...]
    #: `data` as SMTP's DATA carries it, each line that starts with "." doubled, when it was
    #: made from a template quoted once per body (slots.dot_stuffed); None: quote `data`
    stuffed: bytes | None = field(default=None, compare=False, repr=False)

    def with_linesep(self, linesep: str) -> bytes:
        """The bytes with other line ends (a Maildir file takes "\\n"); nothing in them
        holds a bare CR or LF, so the conversion is exact."""
        return self.data if linesep == "\r\n" else self.data.replace(b"\r\n", linesep.encode())


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a digest's messages share under one configuration."""

    from_address: str
    list_id: str
    feedback_id: str
    #: whether List-Unsubscribe-Post is sent (an https unsubscribe URL)
    one_click: bool


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


def _escape_percent(data: bytes) -> bytes:
    return data.replace(b"%", b"%%")


class _Part:
    """One text part: its fixed encoded lines, and the lines encoded per subscriber.

    `template` is bytes with one "%s" per personal line; `lines` is those lines as one
    format string (each ending in a newline), filled in and encoded in one go. The part comes
    as the pieces it was rendered in: a fragment that is whole lines of the part is encoded
    once (`_encoded_fragment`), the text between fragments every time.
    """

    __slots__ = ("count", "fields", "fixed", "lines", "template")

    def __init__(self, pieces: Sequence[str], pattern: re.Pattern[str]):
        #: the fixed bytes between personal lines, each as the chunks it is joined from
        fixed: list[list[bytes]] = [[]]
        dynamic: list[str] = []
        fields: dict[str, None] = {}
        loose: list[str] = []

        def add(encoded: _Encoded) -> None:
            chunks, lines, names = encoded
            fixed[-1].append(chunks[0])
            fixed.extend([chunk] for chunk in chunks[1:])
            dynamic.extend(lines)
            fields.update(dict.fromkeys(names))

        #: whether the text so far ends with a line end
        at_line_start = True
        for piece in pieces:
            if type(piece) is Fragment and at_line_start and piece.endswith("\n"):
                if loose:
                    add(_encode("".join(loose), pattern))
                    loose.clear()
                add(_encoded_fragment(piece, pattern))
            elif piece:
                loose.append(piece)
                at_line_start = piece.endswith("\n")
        add(_encode("".join(loose), pattern))
        #: the encoded text around the personal lines ("%" doubled)
        self.fixed = [b"".join(chunks) for chunks in fixed]
        self.template = b"%s\r\n".join(self.fixed)
        self.lines = "".join(dynamic)
        self.count = len(dynamic)
        #: the personal fields the part shows, in the order they first appear
        self.fields = tuple(fields)

    def encoded_lines(self, values: Mapping[str, str]) -> list[bytes]:
        """The personal lines filled in with `values` and encoded, without their line ends.

        A soft break ("=" at the end of a line) is left as "=\r" and a NUL, which
        `WireBody.assemble` turns into the line end once the message is joined: splitting at
        the hard breaks alone is then one bytes.split (a NUL is always escaped, "=00").
        """
        if not self.count:
            return []
        encoded = binascii.b2a_qp(self.lines.format_map(values).encode("utf-8"), istext=True)
        return encoded.replace(b"=\n", b"=\r\x00").split(b"\n")[:-1]


#: whole lines of a part encoded: the fixed bytes between the personal lines ("%" doubled,
#: one more than the lines), the personal lines as format sources, the fields they show
_Encoded = tuple[tuple[bytes, ...], tuple[str, ...], tuple[str, ...]]


def _encode(content: str, pattern: re.Pattern[str]) -> _Encoded:
    """Whole lines of a part (or its end), encoded around the lines holding a placeholder."""
    data = content.replace("\r\n", "\n")
    fixed: list[bytes] = []
    dynamic: list[str] = []
    #: where the text not placed in the template yet begins
    position = 0
    for match in pattern.finditer(data):
        start = data.rfind("\n", 0, match.start()) + 1
        if start < position:
            continue  # another placeholder on the line just taken
        end = data.find("\n", match.end())
        if end < 0:
            # an unterminated last line encodes differently from a terminated one
            raise _Unsupported("a personal placeholder on the part's unterminated last line")
        end += 1
        fixed.append(_escape_percent(_qp(data[position:start])))
        dynamic.append(_format_source(data[start:end], pattern))
        position = end
    fixed.append(_escape_percent(_qp(data[position:])))
    fields = tuple(dict.fromkeys(m.group(1) for m in pattern.finditer(data)))
    return tuple(fixed), tuple(dynamic), fields


@functools.lru_cache(maxsize=4096)
def _encoded_fragment(fragment: str, pattern: re.Pattern[str]) -> _Encoded:
    """A fragment of whole lines, encoded as `_encode` does, once for every body holding it."""
    return _encode(fragment, pattern)


def _format_source(line: str, pattern: re.Pattern[str]) -> str:
    """The line as a str.format source: braces doubled, placeholders as {field}."""
    out: list[str] = []
    position = 0
    for match in pattern.finditer(line):
        out.append(line[position : match.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + match.group(1) + "}")
        position = match.end()
    out.append(line[position:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


class _Unsupported(Exception):
    """This body is left to the email package."""


class WireBody:
    """A distinct body, flattened once; `assemble` makes one subscriber's message of it."""

    def __init__(self, body: Body, envelope: Envelope, pattern: re.Pattern[str]):
        if "\r" in body.html.replace("\r\n", "") or "\r" in body.text.replace("\r\n", ""):
            # the generator turns a bare CR into a line end; binascii keeps it
            raise _Unsupported("a bare CR in the body")
        self.envelope = envelope
        #: fixed per body: "=_" never starts a quoted-printable line
        self.boundary = f"=_digestd_{secrets.token_hex(12)}"
        text = _Part(body.text_pieces or (body.text,), pattern)
        html_part = _Part(body.html_pieces or (body.html,), pattern)
        headers, rest = _skeleton(envelope)
        subject = _subject_line(body.subject)
        # the marker boundary has the real one's shape, so it was quoted the same way
        boundary = _MARK_BOUNDARY.encode(), self.boundary.encode()
        rest = rest.replace(*boundary)
        headers = headers.replace(*boundary).replace(
            b"Subject: " + _MARK.encode() + b"subject\r\n", subject
        )
        text_at = rest.index(_MARK.encode() + b"text")
        html_at = rest.index(_MARK.encode() + b"html")
        mark = len(_MARK) + 4
        self.template = b"".join([
            headers, rest[:text_at], text.template, rest[text_at + mark : html_at],
            html_part.template, rest[html_at + mark :],
        ])
        #: what surrounds the two parts, for the templates made per token shape
        self._frame = (
            headers + rest[:text_at], rest[text_at + mark : html_at], rest[html_at + mark :]
        )
        self._shaped: dict[tuple[object, ...], _Shaped | None] = {}
        self.text, self.html = text, html_part
        #: the personal fields the body shows
        self.fields = tuple(
            name for name in PERSONAL_FIELDS
            if "{" + name + "}" in text.lines or "{" + name + "}" in html_part.lines
        )

    def assemble(
        self, personal: Personal, *, to_name: str, to_email: str, message_id: str,
        date: dt.datetime, unsubscribe_mailto: str = "", token: str = "",
    ) -> Assembled | None:
        """One subscriber's message, or None when it is the email package's to make.

        `token` is the subscriber's private token: where the personal lines differ from
        another subscriber's only by it, they are filled in from a template (slots.py)."""
        values = {name: getattr(personal, name) for name in self.fields}
        for value in values.values():
            if "\n" in value or "\r" in value:
                return None
        if not to_email.isascii() or _SIMPLE_ADDRESS.fullmatch(to_email) is None:
            return None
        if personal.unsubscribe_url.startswith("https://") != self.envelope.one_click:
            return None
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        # as build_message writes it
        unsubscribe = f"<{header_text(personal.unsubscribe_url)}>"
        if unsubscribe_mailto:
            unsubscribe += f", <mailto:{header_text(unsubscribe_mailto)}?subject=unsubscribe>"
        headers = (
            _to_line(to_name, to_email),
            _date_line(date),
            _id_line(header_text(message_id)),
            _text_line("List-Unsubscribe", unsubscribe),
        )
        shaped = self._by_token(token, values, escaped) if token else None
        stuffed = None
        if shaped is not None:
            text, text_stuffed = shaped.text.arguments(token.encode(), values)
            html_lines, html_stuffed = shaped.html.arguments(token.encode(), escaped)
            data = shaped.template % (*headers, *text, *html_lines)
            # the header lines start with their names: only the slow lines need quoting
            stuffed = shaped.stuffed % (*headers, *text_stuffed, *html_stuffed)
        else:
            data = self.template % (
                *headers,
                *self.text.encoded_lines(values),
                *self.html.encoded_lines(escaped),
            )
            data = data.replace(b"\x00", b"\n")
        sender = _sender(self.envelope.from_address)
        return Assembled(data, sender, (to_email,), stuffed if data.endswith(b"\r\n") else None)


    def _by_token(
        self, token: str, values: Mapping[str, str], escaped: Mapping[str, str]
    ) -> _Shaped | None:
        """The templates for this shape of personal values, made on first use; None when
        the token cannot be slotted in (see slots.py)."""
        if TOKEN.fullmatch(token) is None:
            return None
        text, html_part = self.text, self.html
        key = (
            len(token), shape(values, text.fields, token),
            shape(escaped, html_part.fields, token),
        )
        held = self._shaped.get(key, False)
        if held is not False:
            return held  # type: ignore[return-value]
        if len(self._shaped) >= SHAPES_KEPT:
            self._shaped.clear()
        try:
            made: _Shaped | None = _Shaped(self._frame, text, html_part, key)
        except ValueError:
            made = None
        self._shaped[key] = made
        return made


#: token shapes remembered per body: one in a run whose links all have the same form
SHAPES_KEPT = 8


class _Shaped:
    """A body's message template for one shape of personal values (see `WireBody._by_token`):
    header slots, then the two parts' lines with their token slots."""

    __slots__ = ("html", "stuffed", "template", "text")

    def __init__(
        self, frame: tuple[bytes, bytes, bytes], text: _Part, html_part: _Part,
        key: tuple[object, ...],
    ):
        length, text_shapes, html_shapes = key
        assert isinstance(length, int)
        self.text = TokenLines(
            text.fixed, text.lines,
            dict(zip(text.fields, text_shapes, strict=True)), length,  # type: ignore[call-overload]
        )
        self.html = TokenLines(
            html_part.fixed, html_part.lines,
            dict(zip(html_part.fields, html_shapes, strict=True)), length,  # type: ignore[call-overload]
        )
        head, middle, tail = frame
        self.template = b"".join([head, self.text.template, middle, self.html.template, tail])
        #: the same, dot-stuffed for SMTP once instead of every message (it starts with a
        #: header line; every slot holds whole lines or part of one that is not its start,
        #: except the slow lines, which TokenLines.arguments quotes)
        self.stuffed = dot_stuffed(self.template)


#: a boundary of the shape `build_message` makes, standing in for each body's own
_MARK_BOUNDARY = "=_digestd_" + "0" * 24


@functools.lru_cache(maxsize=8)
def _skeleton(envelope: Envelope) -> tuple[bytes, bytes]:
    """The message the email package writes for this configuration, with markers in the
    personal places and the subject's: (header lines as a bytes template with one "%s" per
    personal header, the rest with "%" doubled). Every header is folded on its own, so the
    lines around the markers are the ones any message of this configuration has."""
    skeleton = message_bytes(
        build_message(
            subject=_MARK + "subject", text=_MARK + "text", html=_MARK + "html",
            from_address=envelope.from_address, to_email=f"{_MARK}@example.invalid",
            to_name="", message_id=f"<{_MARK}@example.invalid>",
            date=dt.datetime(2000, 1, 1, tzinfo=dt.UTC), list_id=envelope.list_id,
            unsubscribe_url=("https://" if envelope.one_click else "http://") + _MARK,
            feedback_id=envelope.feedback_id, boundary=_MARK_BOUNDARY,
        ),
        SMTP_POLICY,
    )
    if b"\x00" in skeleton:
        raise _Unsupported("a NUL in the headers")
    header_end = skeleton.index(b"\r\n\r\n") + 2
    slots = (b"To: ", b"Date: ", b"Message-ID: ", b"List-Unsubscribe: ")
    headers: list[bytes] = []
    for line in skeleton[:header_end].split(b"\r\n")[:-1]:
        headers.append(b"%s" if line.startswith(slots) else _escape_percent(line) + b"\r\n")
    if headers.count(b"%s") != len(slots):
        raise _Unsupported("unexpected header layout")
    return b"".join(headers), _escape_percent(skeleton[header_end:])


@functools.lru_cache(maxsize=1024)
def _subject_line(subject: str) -> bytes:
    """The Subject line as `build_message` sets it (RFC 2047 words when not ASCII), "%"
    doubled for the template."""
    message = EmailMessage(policy=POLICY)
    set_header(message, "Subject", subject)
    return _escape_percent(
        b"".join(SMTP_POLICY.fold_binary(h, v) for h, v in message.raw_items())
    )


# Header lines ------------------------------------------------------------------------------


def _folded(name: str, value: object) -> bytes:
    """What the generator writes for a header set with msg[name] = value."""
    return SMTP_POLICY.fold_binary(*POLICY.header_store_parse(name, value))


def _to_line(name: str, address: str) -> bytes:
    display = " ".join(name.split())
    if display == name and (not display or _SIMPLE_NAME.fullmatch(display)):
        line = f"To: {display} <{address}>\r\n" if display else f"To: {address}\r\n"
        if len(line) <= LINE_LIMIT:
            return line.encode("ascii")
    message = EmailMessage(policy=POLICY)
    set_address(message, "To", name, address)
    return b"".join(SMTP_POLICY.fold_binary(h, v) for h, v in message.raw_items())


def _date_line(date: dt.datetime) -> bytes:
    # the Date header has whole seconds: a run's messages within one share the line
    return _date_line_at(date.astimezone(dt.UTC).replace(microsecond=0))


@functools.lru_cache(maxsize=4)
def _date_line_at(date: dt.datetime) -> bytes:
    return _folded("Date", date)


def _id_line(message_id: str) -> bytes:
    if len(message_id) < LINE_LIMIT and _SIMPLE_ID.fullmatch(message_id):
        return f"Message-ID: {message_id}\r\n".encode("ascii")
    return _folded("Message-ID", message_id)


def _text_line(name: str, value: str) -> bytes:
    if len(value) < LINE_LIMIT and "  " not in value and _SIMPLE_TEXT.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded(name, value)


@functools.lru_cache(maxsize=16)
def _sender(from_address: str) -> str:
    return parse_from(from_address).addr_spec


def wire_body(body: Body, envelope: Envelope, pattern: re.Pattern[str]) -> WireBody | None:
    """`body` flattened once, or None when its messages are the email package's to make."""
    try:
        return WireBody(body, envelope, pattern)
    except _Unsupported:
        return None
