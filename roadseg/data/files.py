"""The files of a dataset folder: walking it, the split a folder names, and naming
files relative to it in messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from roadseg.data.types import RASTER_EXTS

#: Every folder under a dataset root with its files, as :func:`walk` lists them.
Tree: TypeAlias = dict[Path, list[Path]]

#: Folder names that say which split their files belong to.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
#: How many offending files an error message names.
MAX_LISTED = 5


def listing(paths: Sequence[Path], root: Path, limit: int = MAX_LISTED) -> str:
    """``a.tif, b.tif and 3 more`` with paths relative to ``root``."""
    names = []
    for p in paths[:limit]:
        try:
            names.append(str(p.relative_to(root)))
        except ValueError:
            names.append(str(p))
    text = ", ".join(names)
    if len(paths) > limit:
        text += f" and {len(paths) - limit} more"
    return text


def walk(root: Path) -> Tree:
    """Every folder under ``root`` (hidden ones skipped) with its files, sorted."""
    tree: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        here = Path(dirpath)
        tree[here] = sorted(here / f for f in filenames if not f.startswith("."))
    return tree


def split_of(path: Path, root: Path) -> str:
    """The split named by the nearest folder between ``root`` and ``path``."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts
    for part in reversed(parts):
        split = SPLIT_NAMES.get(part.lower())
        if split:
            return split
    return ""


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` for messages (``""`` for ``root`` itself)."""
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return "" if text == "." else text


def is_raster(path: Path) -> bool:
    """Whether ``path`` has a raster file extension (:data:`RASTER_EXTS`)."""
    return path.suffix.lower() in RASTER_EXTS
