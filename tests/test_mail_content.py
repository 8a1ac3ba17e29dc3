"""What every kind of mail looks like on the wire: SpamAssassin's verdict, line and
encoded-word lengths, the text part's wording, the sign-up form's name field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import re
import shutil
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from mailkinds import every_kind, seeded_runtime

from digestd.config import Config, MailConfig
from digestd.digest import build_message
from digestd.digest.render import matched, wrap
from digestd.errors import SubscriberError
from digestd.subscribers import normalize_name
from digestd.web.mail import build_notice

from support import chromium

SPAMASSASSIN = "/usr/bin/spamassassin"
#: the most any kind of mail may score with SpamAssassin's shipped rules
SPAM_LIMIT = 0.5


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    runtime = seeded_runtime(tmp_path_factory.mktemp("mail"))
    try:
        return {
            kind: message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
            for kind, message in every_kind(runtime).items()
        }
    finally:
        runtime.close()


def _parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _spamassassin(data: bytes, prefs: Path) -> tuple[float, str]:
    """(score, report) from `spamassassin -L -t`: local tests only, nothing learnt."""
    result = subprocess.run(
        [SPAMASSASSIN, "-L", "-t", "-p", str(prefs), "--cf", "bayes_auto_learn 0",
         "--cf", "use_bayes 0"],
        input=data, capture_output=True, timeout=120, check=True,
    )
    out = result.stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: .*?score=(-?[\d.]+)", out, re.MULTILINE)
    assert status, out[:2000]
    report = out[out.find("Content analysis details"):]
    return float(status.group(1)), report


@pytest.mark.skipif(
    shutil.which(SPAMASSASSIN) is None,
    reason="needs SpamAssassin: make debs (apt-get install spamassassin)",
)
def test_every_kind_of_mail_scores_clean(kinds: dict[str, bytes], tmp_path: Path) -> None:
    prefs = tmp_path / "user_prefs"
    prefs.write_text("")
    failures = []
    for kind, data in kinds.items():
        score, report = _spamassassin(data, prefs)
        if score > SPAM_LIMIT:
            failures.append(f"{kind}: {score}\n{report}")
    assert not failures, "\n".join(failures)


def test_lines_and_encoded_words_keep_to_the_rfcs(kinds: dict[str, bytes]) -> None:
    for kind, data in kinds.items():
        head, _, body = data.partition(b"\r\n\r\n")
        for line in body.split(b"\r\n"):
            assert len(line) <= 76, (kind, line)
        for word in re.findall(rb"=\?[^?]+\?[qQbB]\?[^?]*\?=", head):
            assert len(word) <= 75, (kind, word)
        message = _parsed(data)
        assert not message.defects, (kind, message.defects)
        for part in message.walk():
            assert not part.defects, (kind, part.defects)


def test_non_ascii_subject_and_name_are_short_words_that_read_back() -> None:
    subject = "12 new papers: Über die Lösung großer Sprachmodelle — ein Überblick über Methoden"
    name = "Zoë Ångström-Müller de la Peña y Fernández"
    message = build_message(
        subject=subject, text="hello\n", html="<p>hello</p>\n",
        from_address="Digests <d@example.org>", to_email="zoe@example.org", to_name=name,
        message_id="<1@example.org>", date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        list_id="d.example.org", unsubscribe_url="https://example.org/unsubscribe/x",
    )
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    head = data.partition(b"\r\n\r\n")[0]
    words = re.findall(rb"=\?[^?]+\?[qQbB]\?[^?]*\?=", head)
    assert len(words) >= 3 and all(len(w) <= 75 for w in words)
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"=?" in line)
    back = _parsed(data)
    assert back["Subject"] == subject
    assert back["To"].addresses[0].display_name == name
    assert back["To"].addresses[0].addr_spec == "zoe@example.org"


def test_text_part_matched_lines_are_short_words_of_the_paper(kinds: dict[str, bytes]) -> None:
    text = _parsed(kinds["digest-large"]).get_body(("plain",)).get_content()
    lines = [line for line in text.splitlines() if line.strip().startswith("Matched:")]
    assert len(lines) >= 20
    for line in lines:
        assert len(line) <= 72, line
        assert not re.search(r'[*"()]|\w:\S', line.partition("Matched:")[2]), line


def test_no_hyphenated_word_is_split_across_lines(kinds: dict[str, bytes]) -> None:
    text = _parsed(kinds["digest-large"]).get_body(("plain",)).get_content()
    lines = text.splitlines()
    assert any("-" in line for line in lines)
    for line in lines:
        assert not re.search(r"\w-$", line), line
    assert wrap("a chain-of-thought " * 8, 20).count("chain-of-thought") == 8


def test_matched_leaves_query_syntax_out() -> None:
    @dataclasses.dataclass
    class Paper:
        highlights: tuple[str, ...] = ()
        terms: tuple[str, ...] = ()

    assert matched(Paper((), ("math*", 'title:"kv cache"', "rl"))) == "math, kv cache, rl"
    assert matched(Paper(("Reasoning", "reasoning", "chain-of-thought"))) == (
        "Reasoning, chain-of-thought"
    )
    assert len(matched(Paper(tuple(f"word{i}" for i in range(40))))) <= 60


@pytest.mark.parametrize("name", [
    "https://spam.example/win", "Visit www.spam.example", "spam.example/deal", "x@spam.example",
    "Click evil.com now",
])
def test_names_that_are_links_are_refused(name: str) -> None:
    with pytest.raises(SubscriberError, match="web or e-mail address"):
        normalize_name(name)


@pytest.mark.parametrize("name", ["Ada Lovelace", "J. R. R. Tolkien", "Dr. Who", "O'Brien"])
def test_ordinary_names_pass(name: str) -> None:
    assert normalize_name(name) == name


def test_the_confirmation_mail_carries_no_name(kinds: dict[str, bytes], tmp_path: Path) -> None:
    message = _parsed(kinds["confirmation"])
    assert message["To"].addresses[0].display_name == ""
    assert "Hello," in message.get_body(("plain",)).get_content()
    config = dataclasses.replace(Config(), mail=MailConfig(from_address="d@example.org"))
    notice = build_notice(
        config, "known", subject="You already get these digests", to_email="a@example.org",
        to_name="Ada Lovelace", now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        context={"manage_url": "https://example.org/manage/x"},
    )
    assert "Hi Ada," in notice.get_body(("plain",)).get_content()


def test_every_mail_fits_a_phone_without_scrolling_sideways(kinds: dict[str, bytes]) -> None:
    """The HTML part in Chromium at 375 px: long links wrap instead of widening the page."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 375, "height": 800})
        # Nothing is fetched: the mails hold links only, and no request may leave.
        page.route("**/*", lambda route: route.abort())
        for kind, data in kinds.items():
            html = _parsed(data).get_body(("html",)).get_content()
            page.set_content(html)
            overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"{kind} scrolls sideways on a phone by {overflow}px"
