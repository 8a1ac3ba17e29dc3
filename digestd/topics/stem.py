"""Words and stems: the one tokenizer shared by queries and papers, and a light English stemmer.

Queries and papers must be cut into words the same way, or a query word could never meet its
text: :func:`split_words` finds the words (runs of letters and digits; ``text-to-image`` is
three words, ``GPT-4o`` two, ``3D`` one), :func:`normalise` lower-cases one of them, drops a
possessive ``'s`` and other apostrophes, and stems it; :func:`surface_word` is the
lower-cased word that prefixes (``token*``) are tested on.

Topic queries are short and written by people who expect ``model`` to find "models" and
"modeling", not by people who expect ``university`` to find "universe". So this stemmer only
removes *inflectional* endings (plural ``-s``/``-es``/``-ies``, ``-ing``, ``-ed``) and a final
silent ``-e``; it never strips derivational suffixes such as ``-er``, ``-ation`` or ``-ic``.
That keeps "transformer" apart from "transform" and "agentic" apart from "agent" (a query that
wants both writes the prefix ``agent*``).

What it conflates, by example::

    model, models, modeling, modelling, modeled   -> model
    token, tokens                                 -> token
    reason, reasons, reasoning, reasoned          -> reason
    decode, decodes, decoding, decoded            -> decod
    image, images, imaging                        -> imag
    study, studies, studied, studying             -> studi
    process, processes, processing                -> process
    embed, embeds, embedding, embeddings          -> embed
    llm, llms                                     -> llm

Stems are internal keys, not words; they are only ever compared with other stems made by the
same function, so the query and the text must both go through :func:`stem`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import repeat

__all__ = [
    "WORD_RE",
    "normalise",
    "split_words",
    "stem",
    "surface_stem",
    "surface_stems",
    "surface_word",
]

#: a word: letters and digits (any script), with inner apostrophes ("model's", "don't");
#: everything else, hyphens included, separates words. :func:`split_words` finds the same
#: words faster; this pattern is for when their offsets are needed.
WORD_RE = re.compile(r"[^\W_]+(?:['’]+[^\W_]+)*")
_APOSTROPHES = "'’"


class _SeparatorTable(dict[int, int]):
    """A ``str.translate`` table mapping every character that is not part of a word to a space.

    Filled on first sight of each character, so any script works and lookups stay in C.
    """

    def __missing__(self, code: int) -> int:
        char = chr(code)
        # the same test as WORD_RE's [^\W_] (str.isalnum is what \w means in str patterns)
        result = code if char.isalnum() or char in _APOSTROPHES else 0x20
        self[code] = result
        return result


_SEPARATORS = _SeparatorTable()

# Words that look inflected but are not; stripping them would split them from their own
# plural ("bias" -> "bia" but "biases" -> "bias") or merge them with an unrelated word.
_INVARIANT = frozenset(
    {
        "alias",
        "atlas",
        "bias",
        "canvas",
        "chaos",
        "gas",
        "lens",
        "news",
        "series",
        "species",
        "embed",  # "embedding" -> "embedd" -> "embed"; without this "embed" -> "emb"
        "evening",  # not "even" + "ing"
    }
)

_VOWELS = frozenset("aeiouy")
_SIBILANT_ENDINGS = ("ches", "shes", "sses", "xes", "zes")

# The shortest word we touch and the shortest stem we leave: below that, endings are more
# often part of the word ("bus", "red", "king") than inflections.
_MIN_WORD = 4
_MIN_STEM = 3


def _has_vowel(text: str) -> bool:
    return any(ch in _VOWELS for ch in text)


def _strip_plural(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "i"  # "studies" -> "studi", like "study"; "movies" like "movie"
    if word.endswith(_SIBILANT_ENDINGS):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "is")):
        # "-us" is usually Latin singular (corpus, status, various) except in short acronyms
        # such as "gpus" and "cpus"
        if word.endswith("us") and len(word) > 4:
            return word
        return word[:-1]
    return word


def _undouble(stem: str) -> str:
    # "running" -> "runn" -> "run", "modelling" -> "modell" -> "model"; but "process" keeps
    # its "ss" and "fill"-like short stems keep their "ll"
    if len(stem) >= 2 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS:
        last = stem[-1]
        if last in "sz":
            return stem
        if last == "l" and len(stem) <= 4:
            return stem
        return stem[:-1]
    return stem


def _strip_verbal(word: str) -> str:
    if word.endswith("ied") and len(word) > 4:
        return word[:-3] + "i"
    for suffix in ("ing", "ed"):
        if not word.endswith(suffix):
            continue
        base = word[: -len(suffix)]
        if suffix == "ed" and base.endswith("e"):
            # "agreed", "exceed": the "e" belongs to the word
            return word
        if len(base) < _MIN_STEM or not _has_vowel(base):
            return word  # "thing", "string", "bed", "red"
        return _undouble(base)
    return word


def _normalise_ending(word: str) -> str:
    # a silent final "e" and a final consonant "y" are dropped/turned into "i" so that the
    # bare word meets its inflected forms: "decode"/"decoding" -> "decod", "study"/"studies"
    # -> "studi", "movie"/"movies" -> "movi"
    if len(word) - 1 < _MIN_STEM:
        return word
    if word.endswith("e") and not word.endswith("ee"):
        return word[:-1]
    if word.endswith("y") and word[-2] not in _VOWELS:
        return word[:-1] + "i"
    return word


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Return the stem of one lower-case word (as produced by the tokenizer).

    Words with digits ("gpt", "3d", "4o"), words shorter than four letters and the few words in
    an exception list are returned unchanged.
    """
    if len(word) < _MIN_WORD or not word.isalpha() or word in _INVARIANT:
        return word
    result = _strip_plural(word)
    if result in _INVARIANT:
        return result
    result = _strip_verbal(result)
    return _normalise_ending(result)


def split_words(text: str) -> list[str]:
    """The words of ``text`` as written (not yet lower-cased), in order.

    The same as ``WORD_RE.findall(text)``, several times faster: papers are tokenised by the
    ten thousand.
    """
    words = text.translate(_SEPARATORS).split()
    if "'" in text or "’" in text:
        # apostrophes only count inside a word: "'key'" is the word "key", "'" is none
        words = list(filter(None, map(str.strip, words, repeat(_APOSTROPHES, len(words)))))
    return words


@lru_cache(maxsize=200_000)
def normalise(surface: str) -> tuple[str, str]:
    """Map one word as written to ``(word, stem)``: lower case, no apostrophes.

    A possessive is dropped rather than glued on, so that "Keyformer's" is the word
    "keyformer"; other apostrophes are removed ("don't" -> "dont").
    """
    word = surface.lower()
    if "'" in word or "’" in word:
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        word = word.replace("'", "").replace("’", "")
    return word, stem(word)


@lru_cache(maxsize=200_000)
def surface_stem(surface: str) -> str:
    """The stem of one word as written: ``normalise(surface)[1]``, with its own cache."""
    return normalise(surface)[1]


#: word as written -> its stem, for surface_stems; emptied when it holds more than
#: _MAX_SURFACES words (a plain dict: an lru_cache's bookkeeping per word costs more than
#: the lookup, and a paper has a couple of hundred words)
_SURFACE_STEMS: dict[str, str] = {}
_MAX_SURFACES = 200_000


def surface_stems(surfaces: list[str]) -> list[str]:
    """The stems of words as written, each ``surface_stem(word)``."""
    try:
        return list(map(_SURFACE_STEMS.__getitem__, surfaces))
    except KeyError:
        if len(_SURFACE_STEMS) > _MAX_SURFACES:
            _SURFACE_STEMS.clear()
        for surface in surfaces:
            if surface not in _SURFACE_STEMS:
                _SURFACE_STEMS[surface] = surface_stem(surface)
        return list(map(_SURFACE_STEMS.__getitem__, surfaces))


@lru_cache(maxsize=200_000)
def surface_word(surface: str) -> str:
    """The lower-case word of one word as written: ``normalise(surface)[0]``, cached."""
    return normalise(surface)[0]
