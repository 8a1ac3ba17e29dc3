"""Messages joined from a body serialised once are the email package's bytes, to the byte."""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import email
import email.policy
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from digestd.config import BouncesConfig, Config, HttpConfig, MailConfig, PathsConfig
from digestd.delivery import smtp as smtp_module
from digestd.delivery.maildir import MaildirTransport
from digestd.delivery.signing import DkimSigner
from digestd.digest import Composer, slots
from digestd.digest.message import POLICY, message_bytes
from digestd.digest.wire import SMTP_POLICY
from digestd.store import SubscriberRecord

from support import seed_readers

NOW = dt.datetime(2025, 6, 3, 6, 30, 12, 345678, tzinfo=dt.UTC)

NAMES = [
    "", "Ada", "Ada Lovelace", "O'Brien", "Jean-Luc Picard", "Zoë Ångström-Łukasiewicz",
    "李 小龍", 'O\'Brien "Quote" <x>', "Dr. Who", "a,b", "  spaced   out  ", "tab\there",
    "line\r\nBcc: evil@example.com", "x" * 120, "Ünïcode " * 20, "=?utf-8?q?fake?=", "{name}",
    "%s %d", "Mr. Smith, Jr.", "ends with dot.", "Ada Lovelace " + "long" * 60,
]
ADDRESSES = [
    "ada@example.org", "first.last+tag@mail.example.co.uk", "x_y-z@sub.example.org",
    "o'brien@example.org", "zoë@exämple.org", "UPPER@EXAMPLE.ORG", "a@b.c",
    "dots..twice@example.org",
]
TOKENS = ["AbCdEfGhIjKl" + "s3cr3t-" * 5, "t" * 43, "a%2Fb{x}", "Q" * 22, "x-_9Z" * 7, "u"]


def _config(tmp_path: Path, base_url: str, *, verp: bool = False) -> Config:
    mail = MailConfig(
        from_address="Paper digests <digest@example.org>", list_id="papers.example.org",
        envelope_sender="bounces@example.org" if verp else "",
    )
    bounces = BouncesConfig(maildir=str(tmp_path / "bounces")) if verp else BouncesConfig()
    return dataclasses.replace(
        Config(), paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url=base_url), mail=mail, bounces=bounces,
    )


@pytest.fixture(scope="module")
def selections(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    readers, topic_names = seed_readers(tmp_path_factory.mktemp("wire"), 8)
    found = [(subscriber.topics, selected) for subscriber, selected in readers]
    assert len(found) >= 4
    return found, topic_names


def _subscriber(number: int, email_address: str, name: str, token: str,
                topics: tuple[str, ...]) -> SubscriberRecord:
    return SubscriberRecord(
        id=number, email=email_address, name=name, cadence="immediate", timezone="UTC",
        token=token, status="active", topics=topics, since_batch_id=0, bounce_count=0,
        created_at=dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC), confirmed_at=None,
        last_slot_at=None,
    )


@pytest.mark.parametrize(
    ("base_url", "verp"),
    [
        ("https://papers.example.org", False),
        ("https://papers.example.org/" + "very-long-path-segment/" * 6, True),
        ("http://127.0.0.1:8080", True),
    ],
)
def test_assembled_bytes_are_the_email_packages(
    tmp_path: Path, selections, base_url: str, verp: bool  # type: ignore[no-untyped-def]
) -> None:
    found, topic_names = selections
    composer = Composer(_config(tmp_path, base_url, verp=verp))
    rng = random.Random(16)
    assembled = fallback = stuffed = 0
    for number in range(150):
        topics, selected = found[number % len(found)]
        subscriber = _subscriber(
            number + 1, ADDRESSES[number % len(ADDRESSES)], NAMES[number % len(NAMES)],
            rng.choice(TOKENS), topics,
        )
        composed = composer.compose(
            subscriber, selected, topic_names, digest_key=f"0-{number % 3 + 1}",
            now=NOW + dt.timedelta(seconds=number // 7),
        )
        message = composed.message
        if composed.assembled is None:
            # only what the email package alone makes: a non-ASCII or unusual address, a
            # line break where the body shows the name
            assert not _plain_address(subscriber.email) or "\n" in subscriber.name, subscriber
            fallback += 1
            continue
        assembled += 1
        data = composed.assembled.data
        # the email package's generator on the same message, and on the bytes parsed back
        assert data == message_bytes(message, SMTP_POLICY), (subscriber.name, subscriber.email)
        # as SMTP carries it, quoted from the body's template quoted once (not made where
        # the token has no slots: the transport quotes the message then)
        if composed.assembled.stuffed is not None:
            assert composed.assembled.stuffed == smtp_module._stuffed(data)[:-3]
            stuffed += 1
        parsed = email.message_from_bytes(data, policy=POLICY)
        assert message_bytes(parsed, SMTP_POLICY) == data
        assert composed.assembled.recipients == (subscriber.email,)
        assert composed.assembled.sender == "digest@example.org"
        _check_wire_shape(data, parsed)
        # the Maildir's \n bytes are the email package's too
        assert composed.assembled.with_linesep("\n") == message_bytes(
            message, message.policy.clone(linesep="\n")
        )
        # the personal parts are those of the personalised body
        html_part = parsed.get_body(("html",)).get_content()
        text_part = parsed.get_body(("plain",)).get_content()
        assert html_part.replace("\r\n", "\n") == composed.html.replace("\r\n", "\n")
        assert text_part.replace("\r\n", "\n") == composed.text.replace("\r\n", "\n")
    assert assembled >= 80 and fallback >= 10
    assert stuffed >= assembled // 2, (stuffed, assembled)


def _plain_address(address: str) -> bool:
    return address.isascii() and ".." not in address and "'" not in address


def _check_wire_shape(data: bytes, parsed: email.message.EmailMessage) -> None:
    assert b"\r\n" in data and b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in data)  # 7-bit
    headers, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in headers.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert not parsed.defects
    for part in parsed.walk():
        assert not part.defects
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_dkim_signs_the_assembled_bytes(tmp_path: Path, selections) -> None:  # type: ignore[no-untyped-def]
    import dkim

    if shutil.which("openssl") is None:
        pytest.fail("needs openssl to make a test key: apt-get install openssl")
    key_file = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", str(key_file)], check=True,
                   capture_output=True)
    public = subprocess.run(["openssl", "pkey", "-in", str(key_file), "-pubout", "-outform",
                             "DER"], check=True, capture_output=True).stdout
    signer = DkimSigner(key_file, "sel", "example.org")
    found, topic_names = selections
    composer = Composer(_config(tmp_path, "https://papers.example.org"))
    topics, selected = found[0]
    composed = composer.compose(
        _subscriber(1, "ada@example.org", "Ada Lovelace", TOKENS[0], topics), selected,
        topic_names, digest_key="0-1", now=NOW,
    )
    assert composed.assembled is not None
    record = b"v=DKIM1; k=rsa; p=" + binascii.b2a_base64(public, newline=False)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.example.org."
        return record

    outbox = MaildirTransport(tmp_path / "outbox", signer=signer)
    outbox.send(composed.outgoing)
    [stored] = list((tmp_path / "outbox" / "new").iterdir())
    for data in (signer.sign(composed.assembled.data), stored.read_bytes()):
        assert dkim.verify(data, dnsfunc=dns)
        signature = data.split(b"\n", 1)[0]
        assert re.search(rb"h=[^;]*list-unsubscribe-post", data.split(b"; b=")[0].lower())
        assert signature.startswith(b"DKIM-Signature:")


def test_quoted_printable_is_line_local() -> None:
    """What the assembly rests on: binascii encodes each line the same, alone or with the
    others around it (our parts hold no CR, so no CRLF detection comes into play)."""
    rng = random.Random(2026)
    alphabet = ["a", " ", "\t", ".", "=", "é", "x" * 10, "\x00", "~", "\x7f", "-", "\x0c",
                "\u2028", "%", "{", "}"]
    lengths = [0, 1, 60, 74, 75, 76, 77, 160]
    for _ in range(20_000):
        lines = [
            "".join(rng.choice(alphabet) for _ in range(rng.choice(lengths))) + "\n"
            for _ in range(rng.randint(1, 4))
        ]
        if rng.random() < 0.5:
            lines[-1] = lines[-1][:-1]
        whole = binascii.b2a_qp("".join(lines).encode(), istext=True)
        assert whole == b"".join(binascii.b2a_qp(line.encode(), istext=True) for line in lines)


@pytest.mark.parametrize("seed", range(40))
def test_token_slots_encode_as_the_whole_line_would(seed: int) -> None:
    """Lines filled in from a template with token slots are the bytes binascii writes for
    the lines filled in first: soft breaks, escapes and dots wherever the token falls."""
    rng = random.Random(seed)
    alphabet = "abc XYZ=.-_~^`|!#*?&;<>\"'/\t{}%é€" + "0123456789ABCDEF"
    length = rng.randint(1, 60)
    token = "".join(rng.choice("ABCxyz019_-") for _ in range(length))
    fields = ["reader_query", "feedback_url", "name"]

    def text() -> str:
        # now and then a line that starts with a dot: SMTP quotes it
        start = "." if rng.random() < 0.3 else ""
        return start + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))

    lines = []
    for _ in range(rng.randint(1, 6)):
        used = rng.sample(fields, rng.randint(1, 3))
        parts = [text() for _ in range(len(used))] + [text() + "\n"]
        lines.append((parts, used))
    values = {
        "reader_query": "?reader=" + token,
        "feedback_url": "https://x.example/f/" + token + "/" + token + "." * rng.randint(0, 2),
        "name": rng.choice(["Ada", "Zoë", "x" * 90, "a.b"]),
    }
    shapes = slots.shape(values, fields, token)
    fixed = [f"<fixed {i}>\r\n".encode() for i in range(len(lines) + 1)]
    source = "".join(
        parts[0].replace("{", "{{").replace("}", "}}") + "".join(
            "{" + field + "}" + after.replace("{", "{{").replace("}", "}}")
            for field, after in zip(used, parts[1:], strict=True)
        )
        for parts, used in lines
    )
    made = slots.TokenLines(fixed, source, dict(zip(fields, shapes, strict=True)), length)
    plain, stuffed = made.arguments(token.encode(), values)
    data = made.template % plain
    expected = [fixed[0]]
    for index, (parts, used) in enumerate(lines):
        pairs = zip(used, parts[1:], strict=True)
        line = parts[0] + "".join(values[field] + after for field, after in pairs)
        encoded = binascii.b2a_qp(line.encode(), istext=True).replace(b"\n", b"\r\n")
        expected += [encoded, fixed[index + 1]]
    assert data == b"".join(expected)
    # quoted for SMTP from the template quoted once: what quoting the whole message gives
    assert slots.dot_stuffed(made.template) % stuffed == smtp_module._stuffed(data)[:-3]


def test_token_lines_kept_per_line_fit_other_bodies_and_token_lengths() -> None:
    """Encoded lines are kept for the process: the same link line in another body (other
    fixed text around it, another line order) or for a token of another length is still the
    bytes binascii writes for it."""
    link = "<a href=3D'https://x.example/p/1?reader={reader}'>" + "w" * 40 + "</a>\n"
    other = "feedback: https://x.example/f/{reader}/" + "." * 70 + "\n"
    for token in ("abc", "A" * 43, "abc", "x_-9" * 9):
        values = {"reader": token}
        shapes = slots.shape(values, ["reader"], token)
        for source in (link + other, other + link + link):
            count = source.count("\n")
            fixed = [f"<fixed {len(token)} {i}>\r\n".encode() for i in range(count + 1)]
            made = slots.TokenLines(fixed, source, {"reader": shapes[0]}, len(token))
            data = made.template % made.arguments(token.encode(), values)[0]
            expected = [fixed[0]]
            for index, line in enumerate(source.format_map(values).splitlines(keepends=True)):
                encoded = binascii.b2a_qp(line.encode(), istext=True)
                expected += [encoded.replace(b"\n", b"\r\n"), fixed[index + 1]]
            assert data == b"".join(expected)
