"""Template blocks rendered once per distinct value and reused by every body that shows them.

A paper appears in many distinct digest bodies (readers follow different mixes of topics over
one batch), and its part of a body is the same in each. The digest templates put that part in
a scoped block (``{% block paper scoped %}``); `FragmentCache` renders the template as usual,
but answers the block from a cache keyed by the values the block reads. The templates stay the
one source of the markup, and a template without the block renders whole, as before.

A block is only cached when everything it reads is a plain value: its free names are found in
the template's source, and at each call their values must be immutable values (`value_types`)
or the environment's own globals. Anything else (``loop``, a namespace, a macro) renders the
block afresh, so a cached fragment is always what the block would render.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import Environment, Template, meta, nodes
from jinja2.runtime import Context

#: fragments kept per block (a run's papers times the few variants each has)
FRAGMENTS = 4096


class Fragment(str):
    """A block's output, as it came out of the cache: whole, the same object each time.

    Seen in a rendered body's pieces, it tells the quoted-printable encoder (digest.wire)
    that it can reuse what it encoded for this fragment before.
    """

    __slots__ = ()


def block_names(env: Environment, source: str, block: str) -> tuple[str, ...] | None:
    """The names `block` reads from its context, or None when the template has no such
    scoped block."""
    for node in env.parse(source).find_all(nodes.Block):
        if node.name == block and node.scoped:
            body = nodes.Template(node.body).set_environment(env)
            return tuple(sorted(meta.find_undeclared_variables(body)))
    return None


class FragmentCache:
    """One template's `block`, cached by the values of the names it reads."""

    def __init__(
        self, env: Environment, template: Template, source: str, block: str,
        value_types: tuple[type, ...],
    ):
        self.template = template
        self.block = block
        self.names = block_names(env, source, block)
        self._original = template.blocks.get(block)
        self._globals = template.globals
        self._types = value_types
        self._cache: dict[tuple[object, ...], Fragment] = {}
        #: fragments rendered (cache misses), for tests and benchmarks
        self.renders = 0

    def clear(self) -> None:
        self._cache.clear()

    def _key(self, context: Context) -> tuple[object, ...] | None:
        assert self.names is not None
        key = []
        for name in self.names:
            value = context.resolve_or_missing(name)
            # a tuple may hold anything: only the value types themselves are trusted
            if type(value) not in self._types and value is not self._globals.get(name):
                return None
            key.append(value)
        return tuple(key)

    def _cached_block(self, context: Context) -> Iterable[str]:
        assert self._original is not None
        key = self._key(context)
        if key is None:
            return self._original(context)
        fragment = self._cache.get(key)
        if fragment is None:
            fragment = Fragment("".join(self._original(context)))
            if len(self._cache) >= FRAGMENTS:
                self._cache.clear()
            self._cache[key] = fragment
            self.renders += 1
        return (fragment,)

    def render(self, variables: dict[str, Any]) -> list[str]:
        """The template rendered with `variables`, as pieces: each fragment whole, the text
        between them joined. "".join(pieces) is what `Template.render` gives."""
        context = self.template.new_context(variables)
        if self.names is not None and self._original is not None:
            context.blocks[self.block] = [self._cached_block]
        try:
            return _pieces(self.template.root_render_func(context))
        except Exception:
            self.template.environment.handle_exception()
            raise  # handle_exception always raises; this keeps type checkers informed


def _pieces(events: Iterator[str]) -> list[str]:
    pieces: list[str] = []
    loose: list[str] = []
    for event in events:
        if type(event) is Fragment:
            if loose:
                pieces.append("".join(loose))
                loose.clear()
            pieces.append(event)
        else:
            loose.append(event)
    if loose:
        pieces.append("".join(loose))
    return pieces

