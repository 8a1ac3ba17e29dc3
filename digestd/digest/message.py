"""The MIME message: multipart/alternative (text, then HTML), UTF-8, list headers (RFC 2369/8058).

Header values never carry a line break: every value built from data passes through
`header_text`, which drops control characters, and `EmailMessage` folds what is long. So a
paper title such as ``"x\\r\\nBcc: evil@example.com"`` stays inside the Subject.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.generator
import email.header
import email.headerregistry
import email.policy
import email.utils
import functools
import hashlib
import io
import re
import secrets
from email.headerregistry import Address
from email.message import EmailMessage

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: Headers are not folded below RFC 5322's hard limit of 998: Python's folding drops the space
#: between two RFC 2047 encoded words (a non-ASCII title in the Subject) and puts a value
#: just over 78 characters on a line of its own, read back with a leading space. Bodies are
#: quoted-printable (lines of at most 76) whatever the policy says, see `text_part`.
class _HeaderClasses(email.headerregistry.HeaderRegistry):
    """The standard header registry, making each header class once.

    The stock registry builds a new class with type() for every header it is asked for, a
    dozen per message; the classes are the same every time, so one per header name serves.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


POLICY = email.policy.SMTP.clone(
    max_line_length=998, cte_type="7bit", header_factory=_HeaderClasses()
)


def header_text(value: str) -> str:
    """One header-safe line: control characters (CR and LF above all) out, spaces collapsed."""
    return " ".join(_CONTROL.sub(" ", value).split())


#: RFC 2047: an encoded-word is at most 75 characters; lines are kept under 78
ENCODED_LINE = 76


def set_header(msg: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header: plain ASCII as it is, anything else as RFC 2047 words.

    The policy's own folding (see POLICY) would write one encoded-word as long as the value;
    email.header splits it into words of at most 75 characters on lines of their own, which
    every reader joins back without a stray space.
    """
    value = header_text(value)
    if value.isascii():
        msg[name] = value
        return
    encoded = email.header.Header(value, "utf-8", header_name=name).encode(
        maxlinelen=ENCODED_LINE
    )
    msg.set_raw(name, encoded)


def _phrase_words(display: str) -> str:
    """A display name as RFC 2047 words of at most 75 characters, split only at spaces.

    Readers differ on the space between two encoded-words inside a phrase (RFC 2047 drops
    it, Python's parser keeps it), so a word is never cut: ASCII words stay as they are,
    and a run of non-ASCII words is one encoded-word while it fits, the space inside it.
    """
    runs: list[list[str]] = []
    for word in display.split(" "):
        if word.isascii() and word:
            runs.append([word])
        elif runs and not runs[-1][0].isascii():
            runs[-1].append(word)
        else:
            runs.append([word])
    pieces: list[str] = []
    for run in runs:
        if run[0].isascii():
            special = set(run[0]) & set('()<>[]:;@\\,."')
            pieces.append(f'"{email.utils.quote(run[0])}"' if special else run[0])
            continue
        chunk = ""
        for word in run:
            candidate = f"{chunk} {word}" if chunk else word
            if chunk and len(_encoded_word(candidate)) > 75:
                pieces.append(_encoded_word(chunk + " "))
                candidate = word
            chunk = candidate
        pieces.append(_encoded_word(chunk))
    return "\n ".join(pieces)


def _encoded_word(text: str) -> str:
    return email.header.Header(text, "utf-8").encode(maxlinelen=1000)


def set_address(msg: EmailMessage, name: str, display_name: str, addr_spec: str) -> None:
    """An address header; a non-ASCII display name goes out as short RFC 2047 words."""
    display = header_text(display_name)
    local, _, domain = addr_spec.rpartition("@")
    if display.isascii() or not addr_spec.isascii():
        msg[name] = Address(display_name=display, username=local, domain=domain)
        return
    msg.set_raw(name, f"{_phrase_words(display)}\n <{addr_spec}>")


def parse_from(from_address: str) -> Address:
    """The configured From (``Name <addr>`` or ``addr``) as an Address."""
    name, addr = email.utils.parseaddr(header_text(from_address))
    if "@" not in addr:
        raise ValueError(f"mail.from_address {from_address!r} has no e-mail address")
    username, domain = addr.rsplit("@", 1)
    return Address(display_name=name, username=username, domain=domain)


def message_id(subscriber_id: int, digest_key: str, salt: str, domain: str) -> str:
    """The same for every attempt at one delivery, so a retried message carries the same id.

    `salt` (the subscriber's creation time) keeps ids apart when a database is reset and
    subscriber ids start again at 1.
    """
    digest = hashlib.sha256(f"{subscriber_id}\0{digest_key}\0{salt}".encode()).hexdigest()
    return f"<digest.{digest[:24]}.{header_text(digest_key)}@{domain}>"


@functools.lru_cache(maxsize=16)
def _fixed_headers(
    from_address: str, list_id: str, feedback_id: str, one_click: bool
) -> tuple[tuple[str, object], ...]:
    """Headers every digest of one configuration shares, parsed once (parsing is not cheap)."""
    sender = parse_from(from_address)
    values = [
        ("From", sender),
        ("List-Id", f"digestd <{header_text(list_id)}>"),
    ]
    if one_click:
        # RFC 8058: mail providers may POST "List-Unsubscribe=One-Click" to the https URL
        # (only https: the RFC does not allow one-click over plain http).
        values.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if feedback_id:
        values.append(("Feedback-ID", header_text(feedback_id)))
    values += [
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
    ]
    return tuple((name, POLICY.header_factory(name, value)) for name, value in values)


@functools.lru_cache(maxsize=4)
def _content_type(subtype: str) -> object:
    return POLICY.header_factory("Content-Type", f'text/{subtype}; charset="utf-8"')


def text_part(content: str, subtype: str) -> EmailMessage:
    """A UTF-8 text part, quoted-printable, encoded by binascii.

    The email package's own quoted-printable encoder is pure Python and made up most of the
    cost of a message; binascii's is C, and its output is the same kind: lines of at most 76
    characters, soft breaks, "=" and non-ASCII bytes escaped.
    """
    data = content.replace("\r\n", "\n").encode("utf-8")
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = _content_type(subtype)
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(data, istext=True).decode("ascii"))
    return part


def build_message(
    *,
    subject: str,
    text: str,
    html: str,
    from_address: str,
    to_email: str,
    to_name: str,
    message_id: str,
    date: dt.datetime,
    list_id: str,
    unsubscribe_url: str,
    unsubscribe_mailto: str = "",
    feedback_id: str = "",
    boundary: str | None = None,
) -> EmailMessage:
    """multipart/alternative: the text part, then the HTML part; every header line-break free.

    `unsubscribe_mailto` is the address an "unsubscribe" mail goes to; it is advertised in
    List-Unsubscribe only when given, that is when something reads that mailbox.
    `boundary` is made up when not given.
    """
    msg = EmailMessage(policy=POLICY)
    # The usual order (From, To, Subject, Date, Message-ID, then the list headers), so a raw
    # message reads the way people expect and the golden file stays stable.
    one_click = unsubscribe_url.startswith("https://")
    (_, sender_header), *list_headers = _fixed_headers(
        from_address, list_id, feedback_id, one_click
    )
    msg["From"] = sender_header
    set_address(msg, "To", to_name, to_email)
    set_header(msg, "Subject", subject)
    msg["Date"] = date.astimezone(dt.UTC)
    msg["Message-ID"] = header_text(message_id)
    list_id_header, *rest = list_headers
    msg[list_id_header[0]] = list_id_header[1]
    unsubscribe = f"<{header_text(unsubscribe_url)}>"
    if unsubscribe_mailto:
        unsubscribe += f", <mailto:{header_text(unsubscribe_mailto)}?subject=unsubscribe>"
    msg["List-Unsubscribe"] = unsubscribe
    for name, value in rest:
        msg[name] = value
    msg.make_alternative()
    # "=_" never starts a line of quoted-printable text (a literal "=" is written "=3D"), so
    # the boundary cannot occur in the parts, and the generator need not search them for it.
    msg.set_boundary(boundary or f"=_digestd_{secrets.token_hex(12)}")
    msg.attach(text_part(text, "plain"))
    msg.attach(text_part(html, "html"))
    return msg


class _Generator(email.generator.BytesGenerator):
    """The standard bytes generator, writing each text part's lines in one call.

    The stock generator writes a quoted-printable body line by line, two writes per line,
    which was a third of the cost of a digest message; joining the lines with the line end
    first gives the same bytes.
    """

    def _write_lines(self, lines: str) -> None:
        if not lines:
            return
        if "\r" not in lines:  # our parts end their lines with "\n" alone
            self.write(lines.replace("\n", self._NL))
        else:
            self.write(self._NL.join(email.generator.NLCRE.split(lines)))


def message_bytes(message: EmailMessage, policy: email.policy.Policy | None = None) -> bytes:
    """`message.as_bytes(policy=policy)`, faster; the same bytes."""
    out = io.BytesIO()
    _Generator(out, mangle_from_=False, policy=policy or message.policy).flatten(message)
    return out.getvalue()
