"""Where ccp's templates and add-ons are: inside the wheel (ccp/_data) or, from a clone, at the
top of the repository."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PKG / "_data" / name, _PKG.parent.parent / name):
        if candidate.is_dir():
            return candidate
    from ccp.errors import InternalError

    raise InternalError(f"ccp's {name}/ directory is missing from this installation",
                        "reinstall ccp (pip install ccp, or pip install -e . from a clone)")


def templates_dir() -> Path:
    return data_dir("templates")


def addons_dir() -> Path:
    return data_dir("addons")
