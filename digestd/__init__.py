"""digestd: turns dumps of paper listings into feeds and e-mail digests."""

#: the one place the version is written; pyproject.toml reads it from here (CHANGELOG.md says
#: what each version changed)
__version__ = "0.2.0"
