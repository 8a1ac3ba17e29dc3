"""Files digestd ships besides its code: templates, the sample dumps, the sample
configuration and the systemd unit.

An installed package (wheel, sdist, pipx) carries them as package data under
``digestd/_data/``, copied there at build time from the source tree's ``templates/``,
``samples/seeds/``, ``config/digestd.toml`` and ``systemd/`` (see setup.py); they are found
with importlib.resources. A source checkout (editable install) has no ``_data``: the files
are read where they are in the tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent

#: name -> where it lives in the source tree (and under _data/ in a built package)
SHIPPED = {
    "templates": "templates",
    "samples": "samples/seeds",
    "config": "config/digestd.toml",
    "unit": "systemd/digestd.service",
    "env": "systemd/digestd.env.example",
}


def shipped(name: str) -> Path:
    """The path of a shipped file or directory, installed or in a source checkout."""
    relative = SHIPPED[name]
    packaged = resources.files("digestd") / "_data" / relative
    if packaged.is_dir() or packaged.is_file():
        # Wheels install as plain files, so the resource is a real path.
        return Path(str(packaged))
    return SOURCE_ROOT / relative


def templates_dir() -> Path:
    return shipped("templates")
