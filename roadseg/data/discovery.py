"""Finding a dataset's image/label pairs from file names, and splitting them into
training, validation and test sets (by the layout's own folders, else seeded, keeping
neighbouring images of one group such as a Tile on the same side).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from roadseg.data.files import listing, walk
from roadseg.data.layouts import LAYOUT_HELP, LAYOUT_NAMES, LAYOUTS
from roadseg.data.types import Sample
from roadseg.errors import DatasetError

DEFAULT_VAL_FRACTION = 0.15


def discover_pairs(root: str | os.PathLike[str]) -> tuple[str, list[Sample], list[str], list[str]]:
    """Find the layout and the image/label pairs under ``root`` (file names only).

    Returns:
        ``(layout, samples, notes, errors)``; samples carry the layout's own
        split (or ``""``); errors list images without labels.

    Raises:
        DatasetError: if ``root`` is missing, empty, or in no recognised layout.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root} does not exist; give the folder holding the training data")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file; --data takes the folder holding the training data")
    tree = walk(root)
    n_files = sum(len(f) for f in tree.values())
    if n_files == 0:
        raise DatasetError(f"{root} is empty; put image/mask pairs in it. {LAYOUT_HELP}")
    for layout in LAYOUTS:
        found = layout.find(root, tree)
        if found is not None:
            break
    else:
        counts = Counter(f.suffix.lower() or "(no extension)" for fs in tree.values() for f in fs)
        what = ", ".join(f"{n} {ext}" for ext, n in counts.most_common(4))
        raise DatasetError(
            f"no training data layout recognised in {root} (found {what} in "
            f"{len(tree)} folder(s)). {LAYOUT_HELP}"
        )
    errors = []
    if found.missing:
        hint = (
            "; a mask needs its image's file name (optionally with _mask), "
            "e.g. images/a.jpg + masks/a.png"
            if not found.samples
            else ""
        )
        errors.append(
            f"{len(found.missing)} image(s) have no label: {listing(found.missing, root)}{hint}"
        )
    notes = list(found.notes)
    if found.orphans:
        notes.append(
            f"{len(found.orphans)} label(s) have no image and are ignored: "
            f"{listing(found.orphans, root)}"
        )
    if not found.samples and not errors:
        errors.append(f"no image/label pairs found in the {LAYOUT_NAMES[found.layout]} layout")
    return found.layout, found.samples, notes, errors


def split_samples(
    samples: Sequence[Sample], *, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0
) -> tuple[tuple[Sample, ...], tuple[Sample, ...], tuple[Sample, ...], str]:
    """Training, validation and test pairs.

    The layout's own validation split is used when it has one. Otherwise a
    seeded split: whole groups go to validation when the data comes in groups
    of neighbours (e.g. the Tiles of the Dubai set), else single pairs.

    Returns:
        ``(train, val, test, description)``.

    Raises:
        ValueError: if ``val_fraction`` is not in (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie between 0 and 1, got {val_fraction}")
    test = tuple(s for s in samples if s.split == "test")
    rest = [s for s in samples if s.split != "test"]
    own_val = tuple(s for s in rest if s.split == "val")
    if own_val and any(s.split != "val" for s in rest):
        train = tuple(s for s in rest if s.split != "val")
        return train, own_val, test, "the layout's own validation split"
    rng = np.random.default_rng(seed)
    target = val_fraction * len(rest)
    groups = sorted({s.group for s in rest})
    if len(rest) < 2:
        return tuple(rest), tuple(rest), test, "one pair: validation crops come from it too"
    if len(groups) >= 2:
        order = [groups[i] for i in rng.permutation(len(groups))]
        sizes = Counter(s.group for s in rest)
        chosen: list[str] = []
        count = 0
        for g in order[:-1]:  # always leave one group for training
            if chosen and abs(count + sizes[g] - target) >= abs(count - target):
                break
            chosen.append(g)
            count += sizes[g]
        val = tuple(s for s in rest if s.group in chosen)
        train = tuple(s for s in rest if s.group not in chosen)
        names = ", ".join(chosen)
        return train, val, test, f"seeded (seed {seed}) by folder: validation is {names}"
    n_val = min(len(rest) - 1, max(1, round(target)))
    picked = set(rng.permutation(len(rest))[:n_val].tolist())
    val = tuple(s for i, s in enumerate(rest) if i in picked)
    train = tuple(s for i, s in enumerate(rest) if i not in picked)
    return train, val, test, f"seeded (seed {seed}): {val_fraction:.0%} of the pairs"
