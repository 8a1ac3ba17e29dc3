"""digestd: turns dumps of paper listings into feeds and e-mail digests."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("digestd")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
