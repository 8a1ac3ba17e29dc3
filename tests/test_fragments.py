"""Bodies joined from cached paper fragments are what the whole templates render, to the byte."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from digestd.config import Config, PathsConfig
from digestd.digest import Composer
from digestd.digest.fragments import Fragment
from digestd.digest.message import message_bytes
from digestd.digest.wire import SMTP_POLICY
from digestd.resources import templates_dir

from support import seed_readers

NOW = dt.datetime(2025, 6, 3, 6, 30, tzinfo=dt.UTC)
BLOCK = "{% block paper scoped %}\n"
END = "{% endblock %}\n"


@pytest.fixture(scope="module")
def readers(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(subscriber, selected papers) pairs with overlapping topics, and the topic names."""
    found, names = seed_readers(tmp_path_factory.mktemp("fragments"), 12)
    assert len(found) >= 8
    return found, names


def _config(tmp_path: Path, edit: dict[str, list[tuple[str, str]]] | None = None) -> Config:
    """The default configuration; with `edit`, a copy of the templates with text replaced
    (each old text's first occurrence)."""
    paths = PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var")
    if edit:
        copy = tmp_path / "templates"
        shutil.copytree(templates_dir(), copy)
        for name, changes in edit.items():
            path = copy / "email" / name
            source = path.read_text()
            for old, new in changes:
                assert old in source
                source = source.replace(old, new, 1)
            path.write_text(source)
        paths = dataclasses.replace(paths, templates_dir=copy)
    return Config(paths=paths)


def test_bodies_from_fragments_are_the_whole_templates(tmp_path: Path, readers) -> None:  # type: ignore[no-untyped-def]
    found, names = readers
    composer = Composer(_config(tmp_path))
    renderer = composer.renderer
    slots = 0
    for _ in range(2):
        composer.clear()  # every body rendered again, from the fragments kept
        for subscriber, selected in reversed(found):
            digest, body = composer.digest(subscriber, selected, names, NOW)
            context = renderer._context(digest)
            assert body.html == renderer._html_template().template.render(context)
            assert body.text == renderer.env.get_template("email/digest.txt").render(context)
            assert "".join(body.html_pieces) == body.html
            assert "".join(body.text_pieces) == body.text
            fragments = [p for p in body.html_pieces if type(p) is Fragment]
            assert len(fragments) == len(digest.papers)
            slots += 2 * len(digest.papers)
    # each paper's block rendered once per way it is shown, not once per body
    assert 0 < renderer.fragment_renders < slots / 3


def _sent(composer: Composer, found, names) -> list[tuple[str, str, bytes]]:  # type: ignore[no-untyped-def]
    out = []
    for subscriber, selected in found:
        composed = composer.compose(subscriber, selected, names, digest_key="0-3", now=NOW)
        assert composed.assembled is not None
        data = composed.assembled.data
        assert data == message_bytes(composed.message, SMTP_POLICY)
        data = re.sub(rb"=_digestd_[0-9a-f]{24}", b"BOUNDARY", data)
        out.append((composed.html, composed.text, data))
    return out


def test_templates_without_the_block_render_the_same(tmp_path: Path, readers) -> None:  # type: ignore[no-untyped-def]
    """An operator's copy of the templates from before the block: the same messages, uncached."""
    found, names = readers
    # the paper block's endblock is the templates' only one
    without = [(BLOCK, ""), (END, "")]
    plain = Composer(_config(tmp_path / "plain", {"digest.html": without, "digest.txt": without}))
    shipped = Composer(_config(tmp_path / "shipped"))
    assert _sent(plain, found, names) == _sent(shipped, found, names)
    assert plain.renderer.fragment_renders == 0


def test_a_block_reading_the_loop_is_rendered_each_time(tmp_path: Path, readers) -> None:  # type: ignore[no-untyped-def]
    found, names = readers
    composer = Composer(_config(tmp_path, {
        "digest.txt": [(BLOCK + "\n* ", BLOCK + "\n{{ loop.index }}. ")],
    }))
    for subscriber, selected in found:
        digest, body = composer.digest(subscriber, selected, names, NOW)
        context = composer.renderer._context(digest)
        assert body.text == composer.renderer.env.get_template("email/digest.txt").render(context)
        for section in digest.sections:
            for number, paper in enumerate(section.papers, 1):
                assert f"\n{number}. {paper.title[:20]}" in body.text
    assert composer.renderer._text is not None and composer.renderer._text.renders == 0
    assert composer.renderer._html is not None and composer.renderer._html.renders > 0


def test_a_fragment_within_a_line_gives_the_email_packages_bytes(tmp_path: Path, readers) -> None:  # type: ignore[no-untyped-def]
    """A block that neither starts nor ends a line: its fragments are encoded with their
    neighbours, and the bytes are still the email package's."""
    found, names = readers
    composer = Composer(_config(tmp_path, {
        "digest.txt": [(BLOCK, "~" + BLOCK)],
        "digest.html": [(BLOCK + "<tr>", "<tr>" + BLOCK.rstrip("\n"))],
    }))
    sent = _sent(composer, found, names)
    assert all("\n~\n* " in text for _, text, _ in sent)
    assert composer.renderer.fragment_renders > 0
