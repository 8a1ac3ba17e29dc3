"""Builds the optional C query evaluator, and ships the templates, sample dumps, sample
configuration and systemd unit as package data.

They live at the top of the source tree, where operators and contributors look for them;
building copies them under ``digestd/_data/`` in the package, where `digestd.resources`
finds them with importlib.resources. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: the same list as digestd.resources.SHIPPED
SHIPPED = [
    "templates", "samples/seeds", "config/digestd.toml", "systemd/digestd.service",
    "systemd/digestd.env.example",
]


class build_py_with_data(build_py):  # lower case, as setuptools names its commands
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # a checkout reads the files where they are
        target = Path(self.build_lib) / "digestd" / "_data"
        for relative in SHIPPED:
            source = ROOT / relative
            if source.is_dir():
                shutil.copytree(source, target / relative, dirs_exist_ok=True)
            else:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / relative)


# The query evaluator and the word cutting in C (digestd.topics.extension): optional, so that
# a machine without a compiler installs digestd all the same and matches in Python.
NATIVE = Extension(
    "digestd.topics._program", ["digestd/topics/_program.c", "digestd/topics/_text.c"],
    depends=["digestd/topics/_text.h"], optional=True, extra_compile_args=["-O2"],
)

setup(cmdclass={"build_py": build_py_with_data}, ext_modules=[NATIVE])
