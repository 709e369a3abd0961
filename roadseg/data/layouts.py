"""Dataset layouts: one small finder per layout, registered in :data:`LAYOUTS`.

A finder takes a dataset folder and its walked :data:`~roadseg.data.files.Tree` and
returns the image/label pairs it recognises (a :class:`Found`), or None when the
folder is not in its layout. :func:`roadseg.data.discover_pairs` consults the
finders in the order of :data:`LAYOUTS` and keeps the first answer, so adding a
layout means writing a finder and placing it in that tuple.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from roadseg.data.files import SPLIT_NAMES, Tree, is_raster, relative_name, split_of
from roadseg.data.types import VECTOR_EXTS, Sample

IMAGE_DIR_NAMES = ("images", "image", "imgs", "img")
MASK_DIR_NAMES = ("masks", "mask", "labels", "label", "gt", "annotations")
MASK_SUFFIXES = ("", "_mask", "_label", "_labels", "_gt", "-mask", "_segmentation")
FLAT_MASK_SUFFIXES = ("_mask", "_label", "_labels", "_gt")

LAYOUT_HELP = (
    "roadseg train recognises: images/ + masks/ folders with matching file names "
    "(GeoTIFF, PNG, JPEG; also nested, e.g. 'Tile 1/images' + 'Tile 1/masks'); "
    "<name>.tif + <name>_mask.tif side by side; "
    "DeepGlobe <id>_sat.jpg + <id>_mask.png; Massachusetts sat/ + map/ or train/ + "
    "train_labels/; SpaceNet 3 PS-RGB/ chips + geojson_roads/"
)


@dataclass
class Found:
    """What a finder found: its layout's key, the pairs, and what did not pair up.

    Attributes:
        layout: key of the layout (see :data:`LAYOUTS`).
        samples: the image/label pairs, in the order they were found.
        missing: images without a label.
        orphans: labels without an image.
        notes: things the user should know (e.g. unlabelled folders skipped).
    """

    layout: str
    samples: list[Sample]
    missing: list[Path] = field(default_factory=list)  # images without a label
    orphans: list[Path] = field(default_factory=list)  # labels without an image
    notes: list[str] = field(default_factory=list)


def _constant(value: str) -> Callable[[Path], str]:
    """A labeller giving every image of a folder the same split or group."""
    return lambda _path: value


def _match_pairs(
    images: Iterable[Path],
    labels: Iterable[Path],
    *,
    split: Callable[[Path], str],
    group: Callable[[Path], str],
    suffixes: Sequence[str] = MASK_SUFFIXES,
) -> tuple[list[Sample], list[Path], list[Path]]:
    """Pair images with labels of the same stem (plus an optional suffix)."""
    by_stem: dict[str, list[Path]] = {}
    for lab in labels:
        by_stem.setdefault(lab.stem.lower(), []).append(lab)
    used: set[Path] = set()
    samples: list[Sample] = []
    missing: list[Path] = []
    for img in images:
        found = None
        for suffix in suffixes:
            cands = [c for c in by_stem.get((img.stem + suffix).lower(), []) if c != img]
            if cands:
                # Prefer lossless masks when a stem has several (x.png and x.jpg).
                cands.sort(key=lambda c: (c.suffix.lower() in (".jpg", ".jpeg"), c.name))
                found = cands[0]
                break
        if found is None:
            missing.append(img)
        else:
            used.add(found)
            samples.append(Sample(img, found, split(img), group(img)))
    orphans = [lab for labs in by_stem.values() for lab in labs if lab not in used]
    return samples, missing, sorted(orphans)


def _unlabelled_folders(
    missing: list[Path], samples: list[Sample], notes: list[str], root: Path
) -> list[Path]:
    """Drop images in folders where no image has a label (unlabelled splits).

    When no image at all has a label, nothing is dropped: the names do not match.
    """
    if not samples:
        return missing
    labelled = {s.image.parent for s in samples}
    skip = sorted({m.parent for m in missing} - labelled)
    for folder in skip:
        n = sum(1 for m in missing if m.parent == folder)
        notes.append(
            f"{relative_name(folder, root) or '.'}/: {n} images without labels skipped "
            "(unlabelled split)"
        )
    return [m for m in missing if m.parent in labelled]


def find_spacenet(root: Path, tree: Tree) -> Found | None:
    """SpaceNet 3 roads: image chips (``PS-RGB`` preferred) and ``geojson_roads``
    LineStrings, matched on ``AOI_<k>`` and ``_img<N>``."""
    key_re = re.compile(r"_img(\d+)(?=\D|$)", re.IGNORECASE)
    aoi_re = re.compile(r"AOI_(\d+)", re.IGNORECASE)

    def key(path: Path) -> tuple[str, str] | None:
        m = key_re.search(path.stem)
        if not m:
            return None
        aoi = aoi_re.search(str(path.relative_to(root)))
        return (aoi.group(1) if aoi else "", m.group(1))

    vectors: dict[tuple[str, str], list[Path]] = {}
    rasters: dict[tuple[str, str], list[Path]] = {}
    for files in tree.values():
        for f in files:
            k = key(f)
            if k is None:
                continue
            if f.suffix.lower() in VECTOR_EXTS:
                vectors.setdefault(k, []).append(f)
            elif f.suffix.lower() in (".tif", ".tiff"):
                rasters.setdefault(k, []).append(f)
    if not vectors:
        return None

    def raster_rank(p: Path) -> int:
        text = str(p.relative_to(root)).upper().replace("_", "-")
        for i, token in enumerate(("PS-RGB", "RGB-PANSHARPEN", "PS-MS", "MUL-PS", "MS", "MUL")):
            if token in text:
                return i
        return 9 if "PAN" in text else 8

    def vector_rank(p: Path) -> int:
        parent = p.parent.name.lower()
        return 0 if parent == "geojson_roads" else 1 if "speed" not in parent else 2

    samples = []
    missing = []
    for k in sorted(rasters, key=lambda k: (k[0], int(k[1]))):
        best = min(rasters[k], key=lambda p: (raster_rank(p), str(p)))
        if k not in vectors:
            missing.append(best)
            continue
        vec = min(vectors[k], key=lambda p: (vector_rank(p), str(p)))
        samples.append(Sample(best, vec, split_of(best.parent, root), ""))
    orphans = sorted(min(v, key=vector_rank) for k, v in vectors.items() if k not in rasters)
    found = Found("spacenet", samples, missing, orphans)
    found.missing = _unlabelled_folders(missing, samples, found.notes, root)
    return found


def _children(tree: Tree) -> dict[Path, dict[str, Path]]:
    """Each folder's subfolders by name."""
    out: dict[Path, dict[str, Path]] = {folder: {} for folder in tree}
    for folder in tree:
        if folder.parent in out and folder.parent != folder:
            out[folder.parent][folder.name] = folder
    return out


def find_massachusetts(root: Path, tree: Tree) -> Found | None:
    """Massachusetts Roads: ``sat/`` + ``map/``, or ``train/`` + ``train_labels/`` and the like."""
    pairs: list[tuple[Path, Path]] = []
    for names in _children(tree).values():
        if "sat" in names and "map" in names:
            pairs.append((names["sat"], names["map"]))
        for name, path in names.items():
            if SPLIT_NAMES.get(name.lower()) and f"{name}_labels" in names:
                pairs.append((path, names[f"{name}_labels"]))
    if not pairs:
        return None
    found = Found("massachusetts", [])
    for img_dir, lab_dir in sorted(pairs):
        images = [p for p in tree.get(img_dir, []) if is_raster(p)]
        labels = [p for p in tree.get(lab_dir, []) if is_raster(p)]
        split = split_of(img_dir, root)
        samples, missing, orphans = _match_pairs(
            images, labels, split=_constant(split), group=_constant("")
        )
        found.samples += samples
        found.missing += missing
        found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


def find_deepglobe(root: Path, tree: Tree) -> Found | None:
    """DeepGlobe Road: ``<id>_sat.jpg`` beside ``<id>_mask.png``."""
    found = Found("deepglobe", [])
    any_sat = False
    for folder, files in tree.items():
        sats = [f for f in files if is_raster(f) and f.stem.lower().endswith("_sat")]
        if not sats:
            continue
        any_sat = True
        masks = {
            f.stem.lower()[: -len("_mask")]: f for f in files if f.stem.lower().endswith("_mask")
        }
        used = set()
        for sat in sats:
            ident = sat.stem[: -len("_sat")]
            mask = masks.get(ident.lower())
            if mask is None:
                found.missing.append(sat)
            else:
                used.add(mask)
                found.samples.append(Sample(sat, mask, split_of(folder, root), ""))
        found.orphans += [m for m in masks.values() if m not in used]
    if not any_sat:
        return None
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


def find_pairs(root: Path, tree: Tree) -> Found | None:
    """``images/`` + ``masks/`` folders (or their other names) at any depth, by file stem."""
    dir_pairs: list[tuple[Path, Path]] = []
    for names in _children(tree).values():
        children = {name.lower(): path for name, path in names.items()}
        img_dir = next((children[n] for n in IMAGE_DIR_NAMES if n in children), None)
        mask_dir = next((children[n] for n in MASK_DIR_NAMES if n in children), None)
        if img_dir is not None and mask_dir is not None:
            dir_pairs.append((img_dir, mask_dir))
    if not dir_pairs:
        return None
    found = Found("pairs", [])
    for img_dir, mask_dir in sorted(dir_pairs):
        # Walk the images folder; a mask lives at the same relative folder under masks/.
        for folder, files in tree.items():
            if folder != img_dir and img_dir not in folder.parents:
                continue
            rel = folder.relative_to(img_dir)
            images = [f for f in files if is_raster(f)]
            if not images:
                continue
            labels = [f for f in tree.get(mask_dir / rel, []) if is_raster(f)]
            group = relative_name(img_dir.parent / rel, root)
            split = split_of(img_dir.parent / rel, root)
            samples, missing, orphans = _match_pairs(
                images, labels, split=_constant(split), group=_constant(group)
            )
            found.samples += samples
            found.missing += missing
            found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


def find_flat(root: Path, tree: Tree) -> Found | None:
    """``<name>.tif`` beside ``<name>_mask.tif`` (roadseg.synthetic writes these)."""

    def is_label(p: Path) -> bool:
        return p.stem.lower().endswith(FLAT_MASK_SUFFIXES)

    if not any(is_raster(f) and is_label(f) for files in tree.values() for f in files):
        return None
    found = Found("flat", [])
    for folder, files in tree.items():
        rasters = [f for f in files if is_raster(f)]
        labels = [f for f in rasters if is_label(f)]
        images = [f for f in rasters if not is_label(f)]
        if not images:
            continue
        split = split_of(folder, root)
        samples, missing, orphans = _match_pairs(
            images,
            labels,
            split=_constant(split),
            group=_constant(""),
            suffixes=FLAT_MASK_SUFFIXES,
        )
        found.samples += samples
        found.missing += missing
        found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


#: A finder: ``(root, tree) -> Found`` for a folder in its layout, else None.
Finder: TypeAlias = Callable[[Path, Tree], Found | None]


@dataclass(frozen=True)
class Layout:
    """A dataset layout: its key, its name for people, and its finder.

    Attributes:
        key: recorded in :class:`~roadseg.data.DatasetReport` and model provenance.
        name: how reports name it.
        find: the finder.
    """

    key: str
    name: str
    find: Finder


#: The layouts in the order :func:`~roadseg.data.discover_pairs` consults them;
#: the first finder that answers wins, so a folder that several layouts could
#: read is taken by the earliest. Keep this order: it decides what is found.
LAYOUTS: tuple[Layout, ...] = (
    Layout("spacenet", "SpaceNet 3 roads", find_spacenet),
    Layout("massachusetts", "Massachusetts Roads", find_massachusetts),
    Layout("deepglobe", "DeepGlobe Road", find_deepglobe),
    Layout("pairs", "image/mask folders", find_pairs),
    Layout("flat", "image + <name>_mask pairs", find_flat),
)

#: Human name of each layout, by key.
LAYOUT_NAMES = {layout.key: layout.name for layout in LAYOUTS}
