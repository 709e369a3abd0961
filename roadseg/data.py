"""Training data: finding image/label pairs, and streaming augmented crops.

:func:`scan_dataset` recognises, without flags, the layouts people download:

* **DeepGlobe Road**: ``<id>_sat.jpg`` beside ``<id>_mask.png`` (RGB masks, 0/255).
  Folders holding only images (DeepGlobe's unlabelled ``valid/`` and ``test/``)
  are skipped with a note.
* **Massachusetts Roads**: ``sat/*.tiff`` + ``map/*.tif`` (optionally under
  ``train/``, ``valid/``, ``test/``), or the common mirror layout ``train/``,
  ``train_labels/``, ``val/``, ``val_labels/``, ``test/``, ``test_labels/``.
* **SpaceNet 3 roads**: image chips (``PS-RGB`` preferred) and ``geojson_roads``
  LineStrings matched on ``AOI_<k>`` and ``_img<N>``; lines are buffered to a
  road width in metres and rasterised on the fly for each crop.
* **Plain pairs**: ``images/`` + ``masks/`` (or ``labels/``, ``gt/``) folders with
  matching file stems (a ``_mask``/``_label``/``_gt`` suffix on the mask is
  allowed), GeoTIFF, PNG or JPEG, at any depth: ``train/images`` + ``train/masks``,
  ``images/train`` + ``masks/train``, or nested ``Tile 1/images`` + ``Tile 1/masks``.
* **Side-by-side pairs**: ``<name>.tif`` beside ``<name>_mask.tif`` (or
  ``_label``/``_gt``), as :func:`roadseg.synthetic.write_scene` writes them.

Masks may be 0/255 or 0/1, one band or RGB, or multi-class colour or index
masks where one class is road (:class:`LabelRule`). The scan reads file headers
and a decimated sample of a few masks, never whole images.

Normalisation equals :mod:`roadseg.predict`'s, image by image: uint8 imagery is
divided by 255; any other dtype gets a per-band 2-98 percentile stretch computed
over the whole image (decimated), exactly what ``roadseg predict`` computes for
that image. A model trained here therefore stores ``normalization="auto"``.

The ``tf.data`` pipeline (:func:`make_tf_dataset`) pulls crops from a Python
generator that opens one image per crop and reads only the window it needs
(GeoTIFF windowed reads; PNG and JPEG are decoded whole, one file at a time), so
the dataset is never loaded into memory. A file that fails mid-training is
skipped with a warning and counted in a :class:`SkipLog`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from roadseg.errors import DatasetError, RoadsegError
from roadseg.preprocess import Normalizer, compute_normalizer, select_bands

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)

RASTER_EXTS = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg"})
VECTOR_EXTS = frozenset({".geojson"})
IMAGE_DIR_NAMES = ("images", "image", "imgs", "img")
MASK_DIR_NAMES = ("masks", "mask", "labels", "label", "gt", "annotations")
MASK_SUFFIXES = ("", "_mask", "_label", "_labels", "_gt", "-mask", "_segmentation")
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
#: Road width used to rasterise SpaceNet centerlines (the width of the mask in
#: ../shared/data/spacenet, and of the usual SpaceNet 3 baselines).
DEFAULT_ROAD_WIDTH_M = 4.0
DEFAULT_VAL_FRACTION = 0.15
#: Masks sampled (decimated) to learn how they encode roads.
MASK_SAMPLES = 8
MASK_SAMPLE_SIDE = 512
#: Colour tolerance per channel for ``--road-color`` (survives light compression).
COLOR_TOLERANCE = 8
#: Rasters up to this many pixels are read whole once per crop to choose a
#: window; larger ones are read window by window.
WHOLE_READ_PIXELS = 4_000_000
#: How many offending files an error message names.
MAX_LISTED = 5

LAYOUT_NAMES = {
    "deepglobe": "DeepGlobe Road",
    "massachusetts": "Massachusetts Roads",
    "spacenet": "SpaceNet 3 roads",
    "pairs": "image/mask folders",
    "flat": "image + <name>_mask pairs",
}

LAYOUT_HELP = (
    "roadseg train recognises: images/ + masks/ folders with matching file names "
    "(GeoTIFF, PNG, JPEG; also nested, e.g. 'Tile 1/images' + 'Tile 1/masks'); "
    "<name>.tif + <name>_mask.tif side by side; "
    "DeepGlobe <id>_sat.jpg + <id>_mask.png; Massachusetts sat/ + map/ or train/ + "
    "train_labels/; SpaceNet 3 PS-RGB/ chips + geojson_roads/"
)


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRule:
    """What the user said about the labels.

    Attributes:
        road_color: RGB colour of the road class in colour masks.
        road_value: pixel value of the road class in index masks.
        road_width_m: width of the road band drawn around vector centerlines.
    """

    road_color: tuple[int, int, int] | None = None
    road_value: int | None = None
    road_width_m: float = DEFAULT_ROAD_WIDTH_M

    def __post_init__(self) -> None:
        if self.road_color is not None and self.road_value is not None:
            raise ValueError("give either a road colour or a road value, not both")
        if self.road_color is not None and (
            len(self.road_color) != 3 or any(not 0 <= c <= 255 for c in self.road_color)
        ):
            raise ValueError(f"road colour must be three values 0-255, got {self.road_color}")
        if not self.road_width_m > 0:
            raise ValueError(f"road width must be positive, got {self.road_width_m} m")


@dataclass(frozen=True)
class MaskDecoder:
    """How a raster label becomes a 0/1 road mask.

    Attributes:
        kind: ``"threshold"`` (road where the largest channel >= ``threshold``),
            ``"color"`` (road where every channel is within ``tolerance`` of
            ``color``; palette masks are expanded to RGB first) or ``"value"``
            (road where band 1 equals ``value``).
        threshold: for ``"threshold"``: 1 for 0/1 masks, 128 for 0/255 masks.
        color: for ``"color"``.
        value: for ``"value"``.
        tolerance: per-channel colour tolerance.
        description: how the masks were understood, for reports.
    """

    kind: str = "threshold"
    threshold: int = 128
    color: tuple[int, int, int] | None = None
    value: int | None = None
    tolerance: int = COLOR_TOLERANCE
    description: str = "road where the mask is >= 128"


@dataclass(frozen=True)
class Sample:
    """One image and its label.

    Attributes:
        image: the image file.
        label: a raster mask, or a GeoJSON file of road lines (SpaceNet).
        split: ``"train"``, ``"val"``, ``"test"``, or ``""`` when the layout says nothing.
        group: neighbouring images share a group (e.g. ``"Tile 3"``); seeded
            splits keep a group together so validation is not a neighbour of
            training.
        size: ``(width, height)`` of the image, once its header has been read.
    """

    image: Path
    label: Path
    split: str = ""
    group: str = ""
    size: tuple[int, int] | None = None

    @property
    def is_vector(self) -> bool:
        """Whether the label is vector road lines to rasterise."""
        return self.label.suffix.lower() in VECTOR_EXTS


@dataclass(frozen=True)
class DatasetReport:
    """What :func:`scan_dataset` found.

    Attributes:
        root: the folder scanned.
        layout: key of :data:`LAYOUT_NAMES`.
        train: training pairs.
        val: validation pairs.
        test: test pairs (listed, never used for training).
        split_method: how ``val`` was chosen.
        decoder: how raster masks become road masks.
        rule: the user's label rule.
        gsd: ground sample distance of the training images in metres, if known.
        gsd_source: where ``gsd`` came from.
        dtypes: image pixel types seen.
        band_counts: image band counts seen.
        size_range: ``(min width, min height, max width, max height)`` of the images.
        megapixels: total pixels of the training images / 1e6.
        road_fraction: fraction of road pixels in the sampled masks, if known.
        notes: things the user should know that do not stop training.
        errors: problems that stop training, one line each.
    """

    root: Path
    layout: str
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...] = ()
    split_method: str = ""
    decoder: MaskDecoder = field(default_factory=MaskDecoder)
    rule: LabelRule = field(default_factory=LabelRule)
    gsd: float | None = None
    gsd_source: str = "unknown"
    dtypes: tuple[str, ...] = ()
    band_counts: tuple[int, ...] = ()
    size_range: tuple[int, int, int, int] | None = None
    megapixels: float = 0.0
    road_fraction: float | None = None
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def layout_name(self) -> str:
        """Human name of the layout."""
        return LAYOUT_NAMES.get(self.layout, self.layout)

    def raise_for_errors(self) -> None:
        """Raise if the dataset cannot be trained on.

        Raises:
            DatasetError: with every problem, on one line.
        """
        if self.errors:
            raise DatasetError(f"{self.root}: " + "; ".join(self.errors))

    def summary(self) -> str:
        """One line describing the data, for a model file's provenance."""
        parts = [
            f"{self.layout_name} layout at {self.root}",
            f"{len(self.train)} training + {len(self.val)} validation pairs ({self.split_method})",
        ]
        if self.size_range:
            w0, h0, w1, h1 = self.size_range
            size = f"{w0}x{h0}" if (w0, h0) == (w1, h1) else f"{w0}x{h0} to {w1}x{h1}"
            parts.append(f"{size} px, {'/'.join(self.dtypes)}")
        parts.append(self.decoder.description)
        if self.gsd is not None:
            parts.append(f"gsd {self.gsd:.3g} m ({self.gsd_source})")
        return "; ".join(parts)

    def describe(self) -> str:
        """A multi-line report for ``roadseg train --check``."""
        lines = [f"Dataset: {self.root}", f"  layout:     {self.layout_name}"]
        lines.append(
            f"  pairs:      {len(self.train)} train, {len(self.val)} validation"
            + (f", {len(self.test)} test (not used)" if self.test else "")
        )
        lines.append(f"  split:      {self.split_method}")
        if self.size_range:
            w0, h0, w1, h1 = self.size_range
            lines.append(
                f"  sizes:      {w0}x{h0} to {w1}x{h1} px, {self.megapixels:.1f} Mpx for training"
            )
        if self.dtypes:
            bands = "/".join(str(b) for b in self.band_counts)
            lines.append(f"  images:     {'/'.join(self.dtypes)}, {bands} band(s)")
        lines.append(f"  labels:     {self.decoder.description}")
        if self.road_fraction is not None:
            lines.append(f"  road:       {self.road_fraction:.1%} of sampled mask pixels")
        gsd = f"{self.gsd:.3g} m ({self.gsd_source})" if self.gsd is not None else "unknown"
        lines.append(f"  gsd:        {gsd}")
        for note in self.notes:
            lines.append(f"  note:       {note}")
        for error in self.errors:
            lines.append(f"  PROBLEM:    {error}")
        if not self.errors:
            lines.append("  status:     ready to train")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


@dataclass
class _Found:
    layout: str
    samples: list[Sample]
    missing: list[Path] = field(default_factory=list)  # images without a label
    orphans: list[Path] = field(default_factory=list)  # labels without an image
    notes: list[str] = field(default_factory=list)


def _listing(paths: Sequence[Path], root: Path, limit: int = MAX_LISTED) -> str:
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


def _walk(root: Path) -> dict[Path, list[Path]]:
    """Every folder under ``root`` (hidden ones skipped) with its files, sorted."""
    tree: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        here = Path(dirpath)
        tree[here] = sorted(here / f for f in filenames if not f.startswith("."))
    return tree


def _split_of(path: Path, root: Path) -> str:
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


def _rel(path: Path, root: Path) -> str:
    try:
        text = str(path.relative_to(root))
    except ValueError:
        text = str(path)
    return "" if text == "." else text


def _is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_EXTS


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
            f"{_rel(folder, root) or '.'}/: {n} images without labels skipped (unlabelled split)"
        )
    return [m for m in missing if m.parent in labelled]


def _find_spacenet(root: Path, tree: dict[Path, list[Path]]) -> _Found | None:
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
        samples.append(Sample(best, vec, _split_of(best.parent, root), ""))
    orphans = sorted(min(v, key=vector_rank) for k, v in vectors.items() if k not in rasters)
    found = _Found("spacenet", samples, missing, orphans)
    found.missing = _unlabelled_folders(missing, samples, found.notes, root)
    return found


def _children(tree: dict[Path, list[Path]]) -> dict[Path, dict[str, Path]]:
    """Each folder's subfolders by name."""
    out: dict[Path, dict[str, Path]] = {folder: {} for folder in tree}
    for folder in tree:
        if folder.parent in out and folder.parent != folder:
            out[folder.parent][folder.name] = folder
    return out


def _find_massachusetts(root: Path, tree: dict[Path, list[Path]]) -> _Found | None:
    pairs: list[tuple[Path, Path]] = []
    for names in _children(tree).values():
        if "sat" in names and "map" in names:
            pairs.append((names["sat"], names["map"]))
        for name, path in names.items():
            if SPLIT_NAMES.get(name.lower()) and f"{name}_labels" in names:
                pairs.append((path, names[f"{name}_labels"]))
    if not pairs:
        return None
    found = _Found("massachusetts", [])
    for img_dir, lab_dir in sorted(pairs):
        images = [p for p in tree.get(img_dir, []) if _is_raster(p)]
        labels = [p for p in tree.get(lab_dir, []) if _is_raster(p)]
        split = _split_of(img_dir, root)
        samples, missing, orphans = _match_pairs(
            images, labels, split=lambda _p, s=split: s, group=lambda _p: ""
        )
        found.samples += samples
        found.missing += missing
        found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


def _find_deepglobe(root: Path, tree: dict[Path, list[Path]]) -> _Found | None:
    found = _Found("deepglobe", [])
    any_sat = False
    for folder, files in tree.items():
        sats = [f for f in files if _is_raster(f) and f.stem.lower().endswith("_sat")]
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
                found.samples.append(Sample(sat, mask, _split_of(folder, root), ""))
        found.orphans += [m for m in masks.values() if m not in used]
    if not any_sat:
        return None
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


def _find_pairs(root: Path, tree: dict[Path, list[Path]]) -> _Found | None:
    dir_pairs: list[tuple[Path, Path]] = []
    for names in _children(tree).values():
        children = {name.lower(): path for name, path in names.items()}
        img_dir = next((children[n] for n in IMAGE_DIR_NAMES if n in children), None)
        mask_dir = next((children[n] for n in MASK_DIR_NAMES if n in children), None)
        if img_dir is not None and mask_dir is not None:
            dir_pairs.append((img_dir, mask_dir))
    if not dir_pairs:
        return None
    found = _Found("pairs", [])
    for img_dir, mask_dir in sorted(dir_pairs):
        # Walk the images folder; a mask lives at the same relative folder under masks/.
        for folder, files in tree.items():
            if folder != img_dir and img_dir not in folder.parents:
                continue
            rel = folder.relative_to(img_dir)
            images = [f for f in files if _is_raster(f)]
            if not images:
                continue
            labels = [f for f in tree.get(mask_dir / rel, []) if _is_raster(f)]
            group = _rel(img_dir.parent / rel, root)
            split = _split_of(img_dir.parent / rel, root)
            samples, missing, orphans = _match_pairs(
                images, labels, split=lambda _p, s=split: s, group=lambda _p, g=group: g
            )
            found.samples += samples
            found.missing += missing
            found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


FLAT_MASK_SUFFIXES = ("_mask", "_label", "_labels", "_gt")


def _find_flat(root: Path, tree: dict[Path, list[Path]]) -> _Found | None:
    """``<name>.tif`` beside ``<name>_mask.tif`` (roadseg.synthetic writes these)."""

    def is_label(p: Path) -> bool:
        return p.stem.lower().endswith(FLAT_MASK_SUFFIXES)

    if not any(_is_raster(f) and is_label(f) for files in tree.values() for f in files):
        return None
    found = _Found("flat", [])
    for folder, files in tree.items():
        rasters = [f for f in files if _is_raster(f)]
        labels = [f for f in rasters if is_label(f)]
        images = [f for f in rasters if not is_label(f)]
        if not images:
            continue
        split = _split_of(folder, root)
        samples, missing, orphans = _match_pairs(
            images,
            labels,
            split=lambda _p, s=split: s,
            group=lambda _p: "",
            suffixes=FLAT_MASK_SUFFIXES,
        )
        found.samples += samples
        found.missing += missing
        found.orphans += orphans
    found.missing = _unlabelled_folders(found.missing, found.samples, found.notes, root)
    return found


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
    tree = _walk(root)
    n_files = sum(len(f) for f in tree.values())
    if n_files == 0:
        raise DatasetError(f"{root} is empty; put image/mask pairs in it. {LAYOUT_HELP}")
    finders = (_find_spacenet, _find_massachusetts, _find_deepglobe, _find_pairs, _find_flat)
    for finder in finders:
        found = finder(root, tree)
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
            f"{len(found.missing)} image(s) have no label: {_listing(found.missing, root)}{hint}"
        )
    notes = list(found.notes)
    if found.orphans:
        notes.append(
            f"{len(found.orphans)} label(s) have no image and are ignored: "
            f"{_listing(found.orphans, root)}"
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


# --------------------------------------------------------------------------------------------
# Headers, ground sample distance, mask encoding
# --------------------------------------------------------------------------------------------


def _open(path: Path) -> rasterio.io.DatasetReader:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def pixel_size_m(src: rasterio.io.DatasetReader) -> tuple[float, float] | None:
    """Metres on the ground per pixel along x and y, or None if the raster is
    not georeferenced (measured as ``roadseg predict`` measures its inputs, so
    a model's recorded GSD and an input's GSD compare like with like; see
    :func:`roadseg.resample.pixel_size_on_ground`)."""
    from roadseg.resample import pixel_size_on_ground

    return pixel_size_on_ground(src)


def _colormap_lut(src: rasterio.io.DatasetReader) -> np.ndarray | None:
    """A (256, 3) uint8 lookup table for a palette band, or None."""
    if src.count != 1 or src.dtypes[0] != "uint8":
        return None
    try:
        cmap = src.colormap(1)
    except ValueError:
        return None
    lut = np.zeros((256, 3), dtype=np.uint8)
    for idx, rgba in cmap.items():
        if 0 <= idx < 256:
            lut[idx] = rgba[:3]
    return lut


def decode_mask(raw: np.ndarray, decoder: MaskDecoder, lut: np.ndarray | None = None) -> np.ndarray:
    """Turn a label raster block into a 0/1 road mask.

    Args:
        raw: ``(bands, height, width)`` label values.
        decoder: the rule (see :class:`MaskDecoder`).
        lut: ``(256, 3)`` colour table of a palette mask, if any.

    Returns:
        ``(height, width)`` uint8 array of 0 and 1.
    """
    if decoder.kind == "value":
        return (raw[0] == decoder.value).astype(np.uint8)
    if lut is not None:
        raw = np.moveaxis(lut[raw[0]], -1, 0)
    if decoder.kind == "color":
        if raw.shape[0] < 3:
            return np.zeros(raw.shape[1:], dtype=np.uint8)
        color = np.asarray(decoder.color, dtype=np.int16)[:, None, None]
        diff = np.abs(raw[:3].astype(np.int16) - color)
        return np.all(diff <= decoder.tolerance, axis=0).astype(np.uint8)
    channels = raw[:3] if raw.shape[0] >= 3 else raw[:1]
    return (channels.max(axis=0) >= decoder.threshold).astype(np.uint8)


def _sample_masks(samples: Sequence[Sample]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Decimated reads of a few raster masks spread over the dataset."""
    rasters = [s for s in samples if not s.is_vector]
    if not rasters:
        return []
    picks = np.linspace(0, len(rasters) - 1, num=min(MASK_SAMPLES, len(rasters))).round()
    out = []
    for i in sorted({int(p) for p in picks}):
        try:
            with _open(rasters[i].label) as src:
                scale = max(1.0, max(src.width, src.height) / MASK_SAMPLE_SIDE)
                shape = (
                    src.count,
                    max(1, round(src.height / scale)),
                    max(1, round(src.width / scale)),
                )
                raw = src.read(out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
                out.append((raw, _colormap_lut(src)))
        except (RasterioError, OSError, ValueError):
            continue  # reported by the header check
    return out


def _colour_listing(colours: Counter[tuple[int, ...]], total: int, limit: int = 6) -> str:
    items = [
        f"({','.join(str(int(c)) for c in colour)}) {n / total:.0%}"
        for colour, n in colours.most_common(limit)
    ]
    more = len(colours) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


_UNKNOWN = MaskDecoder(description="not understood (see the problem below)")


def infer_decoder(
    masks: Sequence[tuple[np.ndarray, np.ndarray | None]], rule: LabelRule
) -> tuple[MaskDecoder, float | None, str | None]:
    """Learn how masks encode roads from a few decimated masks.

    Args:
        masks: ``(raw (bands, h, w), palette lut or None)`` pairs.
        rule: what the user said (``road_color`` / ``road_value``).

    Returns:
        ``(decoder, road fraction in the samples or None, error or None)``.
    """
    if rule.road_value is not None:
        dec = MaskDecoder(
            kind="value",
            value=rule.road_value,
            description=f"road where the mask = {rule.road_value}",
        )
    elif rule.road_color is not None:
        r, g, b = rule.road_color
        dec = MaskDecoder(
            kind="color",
            color=rule.road_color,
            description=f"road where the mask is RGB ({r},{g},{b})",
        )
    else:
        dec = None
    if not masks:
        return dec or MaskDecoder(), None, None

    # Colours (or grey values) present, as tuples; palette masks expanded.
    colours: Counter[tuple[int, ...]] = Counter()
    index_values: Counter[int] = Counter()
    total = 0
    for raw, lut in masks:
        index_values.update(np.unique(raw[0], return_counts=True)[0].tolist())
        rgb = np.moveaxis(lut[raw[0]], -1, 0) if lut is not None else raw[:3]
        flat = rgb.reshape(rgb.shape[0], -1).T
        uniq, counts = np.unique(flat, axis=0, return_counts=True)
        for u, n in zip(uniq, counts, strict=True):
            colours[tuple(int(v) for v in u)] += int(n)
        total += flat.shape[0]
    multiband = any(raw.shape[0] >= 3 or lut is not None for raw, _ in masks)

    if dec is not None:
        if dec.kind == "color" and not multiband:
            values = ", ".join(str(v) for v in sorted(index_values)[:12])
            return (
                dec,
                None,
                (
                    f"--road-color needs colour (RGB) masks, but the masks have one band "
                    f"(values {values}); use --road-value N"
                ),
            )
        fraction = float(
            np.mean(np.concatenate([decode_mask(raw, dec, lut).ravel() for raw, lut in masks]))
        )
        if fraction == 0.0:
            found = (
                _colour_listing(colours, total)
                if dec.kind == "color"
                else ", ".join(str(v) for v in sorted(index_values)[:12])
            )
            return (
                dec,
                0.0,
                (f"no sampled mask contains the road class you gave; the masks hold {found}"),
            )
        return dec, fraction, None

    grey = all(len(set(c)) == 1 for c in colours)
    if grey:
        values = sorted({c[0] for c in colours})
        counts = {c[0]: n for c, n in colours.items()}
        # JPEG-compressed 0/255 masks: nearly all pixels near black or white.
        extreme = sum(n for v, n in counts.items() if v <= 32 or v >= 223)
        if set(values) <= {0, 1}:
            dec = MaskDecoder(kind="threshold", threshold=1, description="0/1 masks, road = 1")
        elif set(values) <= {0, 255}:
            dec = MaskDecoder(
                kind="threshold", threshold=128, description="0/255 masks, road = 255"
            )
        elif values[-1] >= 223 and extreme >= 0.98 * total:
            dec = MaskDecoder(
                kind="threshold",
                threshold=128,
                description="near-binary 0/255 masks (compression noise), road >= 128",
            )
        elif len(values) <= 32:
            listing = ", ".join(f"{v} {counts[v] / total:.0%}" for v in values[:12])
            return (
                _UNKNOWN,
                None,
                (
                    f"the masks hold {len(values)} classes (values {listing}); "
                    "say which is road with --road-value N"
                ),
            )
        else:
            return (
                _UNKNOWN,
                None,
                (
                    f"the masks are not binary ({len(values)} grey levels); give 0/255 or 0/1 "
                    "masks, or --road-value N for an index mask"
                ),
            )
    else:
        non_black = [c for c in colours if any(c)]
        if len(colours) == 2 and len(non_black) == 1:
            colour = tuple(int(v) for v in non_black[0][:3])
            r, g, b = colour
            dec = MaskDecoder(
                kind="color",
                color=(r, g, b),
                description=f"two-colour masks, road = RGB ({r},{g},{b})",
            )
        else:
            return (
                _UNKNOWN,
                None,
                (
                    f"the masks hold {len(colours)} colours: {_colour_listing(colours, total)}; "
                    "say which is road with --road-color R,G,B"
                ),
            )
    fraction = float(
        np.mean(np.concatenate([decode_mask(raw, dec, lut).ravel() for raw, lut in masks]))
    )
    return dec, fraction, None


def _check_headers(
    samples: Sequence[Sample],
    *,
    bands: Sequence[int] | None,
    model_bands: int,
    root: Path,
) -> tuple[list[Sample], dict[str, Any]]:
    """Open every image and label header; return samples with sizes and findings."""
    out: list[Sample] = []
    unreadable: list[Path] = []
    mismatched: list[str] = []
    band_problems: list[str] = []
    dtypes: Counter[str] = Counter()
    counts: Counter[int] = Counter()
    gsds: list[float] = []
    for s in samples:
        try:
            with _open(s.image) as src:
                size = (src.width, src.height)
                dtypes[src.dtypes[0]] += 1
                counts[src.count] += 1
                try:
                    select_bands(src, bands, model_bands, s.image.name)
                except RoadsegError as exc:
                    band_problems.append(str(exc))
                px = pixel_size_m(src)
                if px is not None:
                    gsds.append((px[0] + px[1]) / 2.0)
        except (RasterioError, OSError):
            unreadable.append(s.image)
            continue
        try:
            if s.is_vector:
                _read_geojson(s.label)
            else:
                with _open(s.label) as lab:
                    if (lab.width, lab.height) != size:
                        mismatched.append(
                            f"{_rel(s.label, root)} is {lab.width}x{lab.height}, "
                            f"its image {size[0]}x{size[1]}"
                        )
                        continue
        except (RasterioError, OSError, ValueError):
            unreadable.append(s.label)
            continue
        out.append(replace(s, size=size))
    return out, {
        "unreadable": unreadable,
        "mismatched": mismatched,
        "band_problems": band_problems,
        "dtypes": dtypes,
        "counts": counts,
        "gsds": gsds,
    }


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    rule: LabelRule = LabelRule(),
    bands: Sequence[int] | None = None,
    model_bands: int = 3,
    gsd: float | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    tile_size: int = 224,
) -> DatasetReport:
    """Find and check a training dataset, reading headers and a few masks only.

    Problems that stop training (images without labels, unreadable files, masks
    of another size, masks whose road class is unclear) are collected in
    ``report.errors`` rather than raised, so ``--check`` can list them all; call
    :meth:`DatasetReport.raise_for_errors` before training.

    Args:
        root: the dataset folder.
        rule: road colour/value and road width for vector labels.
        bands: image bands that feed the model (1-based), or None for all.
        model_bands: bands the model takes.
        gsd: ground sample distance in metres, overriding the georeferencing.
        val_fraction: share of pairs for a seeded validation split.
        seed: seed of the split.
        tile_size: training crop size; smaller images are noted (they are padded).

    Raises:
        DatasetError: if the folder is missing, empty or in no recognised layout.
    """
    root = Path(root)
    layout, samples, notes, errors = discover_pairs(root)
    checked, found = _check_headers(samples, bands=bands, model_bands=model_bands, root=root)
    if found["unreadable"]:
        errors.append(
            f"{len(found['unreadable'])} file(s) cannot be read as rasters: "
            f"{_listing(found['unreadable'], root)}"
        )
    if found["mismatched"]:
        listing = ", ".join(found["mismatched"][:MAX_LISTED])
        more = len(found["mismatched"]) - MAX_LISTED
        errors.append(
            f"{len(found['mismatched'])} mask(s) differ in size from their image: {listing}"
            + (f" and {more} more" if more > 0 else "")
        )
    if found["band_problems"]:
        first = found["band_problems"][0]
        errors.append(f"{len(found['band_problems'])} image(s) do not fit the model: {first}")

    sampled = _sample_masks(checked)
    decoder, road_fraction, problem = infer_decoder(sampled, rule)
    if problem:
        errors.append(problem)
    elif road_fraction == 0.0:
        notes.append(f"none of the {len(sampled)} sampled masks contains road")
    if any(s.is_vector for s in checked):
        decoder = replace(
            decoder,
            description=f"road lines buffered to {rule.road_width_m:g} m wide",
        )

    train, val, test, split_method = split_samples(checked, val_fraction=val_fraction, seed=seed)
    if checked and not train:
        errors.append("no pairs are left for training after the validation split")

    sizes = [s.size for s in checked if s.size]
    size_range = None
    if sizes:
        ws, hs = zip(*sizes, strict=True)
        size_range = (min(ws), min(hs), max(ws), max(hs))
        small = [s for s in checked if s.size and min(s.size) < tile_size]
        if small:
            notes.append(
                f"{len(small)} image(s) are smaller than the {tile_size} px crop and are padded: "
                f"{_listing([s.image for s in small], root)}"
            )
    megapixels = sum(s.size[0] * s.size[1] for s in train if s.size) / 1e6

    gsd_source = "unknown"
    gsds = found["gsds"]
    if gsd is not None:
        gsd_value: float | None = float(gsd)
        gsd_source = "--gsd"
    elif gsds:
        gsd_value = float(np.median(gsds))
        gsd_source = "georeferencing"
        if len(gsds) < len(checked):
            notes.append(
                f"only {len(gsds)} of {len(checked)} images are georeferenced; "
                f"the gsd {gsd_value:.3g} m comes from those"
            )
        if max(gsds) > 1.25 * min(gsds):
            notes.append(
                f"pixel sizes vary from {min(gsds):.3g} to {max(gsds):.3g} m; "
                f"the median {gsd_value:.3g} m is recorded"
            )
    else:
        gsd_value = None
        notes.append("the images carry no pixel size; pass --gsd M to record it in the model")

    return DatasetReport(
        root=root,
        layout=layout,
        train=train,
        val=val,
        test=test,
        split_method=split_method,
        decoder=decoder,
        rule=rule,
        gsd=gsd_value,
        gsd_source=gsd_source,
        dtypes=tuple(sorted(found["dtypes"])),
        band_counts=tuple(sorted(found["counts"])),
        size_range=size_range,
        megapixels=megapixels,
        road_fraction=road_fraction,
        notes=tuple(notes),
        errors=tuple(errors),
    )


# --------------------------------------------------------------------------------------------
# Reading crops
# --------------------------------------------------------------------------------------------


def _read_geojson(path: Path) -> tuple[list[Any], str | None]:
    """Geometries of a GeoJSON file and its legacy ``crs`` name (None: lon/lat)."""
    from shapely.geometry import shape

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a GeoJSON object")
    if data.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif data.get("type") == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    crs = (data.get("crs") or {}).get("properties", {}).get("name")
    shapes = [shape(g) for g in geoms if g]
    return [g for g in shapes if not g.is_empty], crs


def _vector_mask(
    label: Path, src: rasterio.io.DatasetReader, width_m: float
) -> Callable[[Window], np.ndarray]:
    """A function rasterising the label's road lines (buffered) into a window."""
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom
    from shapely import affinity
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    geoms, crs_name = _read_geojson(label)
    px = pixel_size_m(src) or (1.0, 1.0)
    inv = ~src.transform
    pixel_geoms = []
    lonlat = crs_name is None or "CRS84" in crs_name.upper() or crs_name.endswith(":4326")
    reproject = src.crs is not None and not (lonlat and src.crs.to_epsg() == 4326)
    for g in geoms:
        if reproject:
            g = shape(transform_geom(crs_name or "OGC:CRS84", src.crs, mapping(g)))
        g = affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff])
        if g.geom_type in ("Polygon", "MultiPolygon"):
            pixel_geoms.append(g)
            continue
        # Buffer in metres, whatever the pixel aspect ratio.
        metric = affinity.scale(g, px[0], px[1], origin=(0, 0))
        band = metric.buffer(width_m / 2.0, cap_style="flat")
        pixel_geoms.append(affinity.scale(band, 1 / px[0], 1 / px[1], origin=(0, 0)))
    union = unary_union(pixel_geoms) if pixel_geoms else None

    def read(window: Window) -> np.ndarray:
        shape_ = (int(window.height), int(window.width))
        if union is None or union.is_empty:
            return np.zeros(shape_, dtype=np.uint8)
        return rasterize(
            [(union, 1)],
            out_shape=shape_,
            transform=Affine.translation(window.col_off, window.row_off),
            fill=0,
            dtype="uint8",
        )

    return read


class _Source:
    """Window reads of one raster, from memory for small or non-tiled files."""

    def __init__(self, src: rasterio.io.DatasetReader, indexes: Sequence[int] | None) -> None:
        self.src = src
        self.indexes = list(indexes) if indexes is not None else None
        small = src.width * src.height <= WHOLE_READ_PIXELS
        self.whole = src.read(self.indexes) if (small or src.driver != "GTiff") else None

    def read(self, window: Window) -> np.ndarray:
        if self.whole is not None:
            r, c = int(window.row_off), int(window.col_off)
            return self.whole[:, r : r + int(window.height), c : c + int(window.width)]
        return self.src.read(self.indexes, window=window)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of training crops (None turns a part off).

    Attributes:
        dihedral: random 90-degree rotations and flips (the 8 symmetries of a square).
        scale: crops are read at ``tile * s`` with ``s`` log-uniform in this
            range and resized to ``tile`` (small scale changes).
        brightness: largest brightness shift, in units of the [0, 1] range.
        contrast: largest relative contrast change.
        hue: largest hue rotation, in turns (0.05 = 18 degrees).
    """

    dihedral: bool = True
    scale: tuple[float, float] | None = (0.8, 1.25)
    brightness: float = 0.08
    contrast: float = 0.2
    hue: float = 0.04


#: RGB -> YIQ; hue is a rotation of the (I, Q) chroma plane.
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]],
    dtype=np.float32,
)
_YIQ_INV = np.linalg.inv(_YIQ).astype(np.float32)


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Random dihedral and photometric augmentation of one crop.

    Args:
        image: ``(h, w, bands)`` float32 in [0, 1].
        mask: ``(h, w)`` 0/1.
        rng: the random generator to draw from.
        config: what to apply.

    Returns:
        ``(image, mask)``: the same shapes (square crops keep their size), the
        image still in [0, 1], the mask still 0/1.
    """
    if config.dihedral:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
    image = np.array(image, dtype=np.float32)  # contiguous copy we may modify
    if config.hue and image.shape[-1] == 3:
        theta = float(rng.uniform(-config.hue, config.hue)) * 2.0 * math.pi
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float32)
        image = image @ (_YIQ_INV @ rot @ _YIQ).T
    if config.contrast:
        factor = float(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast))
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = (image - mean) * factor + mean
    if config.brightness:
        image = image + float(rng.uniform(-config.brightness, config.brightness))
    np.clip(image, 0.0, 1.0, out=image)
    return image, np.ascontiguousarray(mask)


def resize_square(array: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize a square ``(n, n, ...)`` array to ``(size, size, ...)``.

    Bilinear (pixel centres aligned, edges clamped), or nearest for masks.
    """
    n = array.shape[0]
    pos = (np.arange(size, dtype=np.float32) + 0.5) * (n / size) - 0.5
    if nearest:
        idx = np.clip(np.floor(pos + 0.5).astype(np.intp), 0, n - 1)
        return array[idx][:, idx]
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    f = pos - i0
    extra = (1,) * (array.ndim - 2)
    fr = f.reshape((-1, 1) + extra)
    fc = f.reshape((1, -1) + extra)
    a = array.astype(np.float32, copy=False)
    rows = a[i0] * (1.0 - fr) + a[i1] * fr
    out = rows[:, i0] * (1.0 - fc) + rows[:, i1] * fc
    return out.astype(array.dtype, copy=False)


@dataclass(frozen=True)
class CropSpec:
    """How crops are cut and prepared.

    Attributes:
        tile_size: side of the crops fed to the model.
        decoder: how raster masks become 0/1 road masks.
        road_width_m: width of the road band around vector centerlines.
        bands: image bands (1-based) that feed the model, or None for the
            usual choice (see :func:`roadseg.preprocess.select_bands`).
        model_bands: number of bands the model takes.
        augment: augmentation, or None for none.
        road_focus: share of crops chosen, from a few random candidates, for
            having the most road (thin roads are otherwise seen rarely).
    """

    tile_size: int = 224
    decoder: MaskDecoder = field(default_factory=MaskDecoder)
    road_width_m: float = DEFAULT_ROAD_WIDTH_M
    bands: tuple[int, ...] | None = None
    model_bands: int = 3
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    road_focus: float = 0.5


class CropReader:
    """Reads random crops of image/label pairs, normalised like ``roadseg predict``.

    Normalisation statistics of non-uint8 images are cached per image (a few
    numbers each), so the percentile pass runs once per file.
    """

    #: Random windows compared when a crop should contain road.
    CANDIDATES = 4

    def __init__(self, spec: CropSpec) -> None:
        self.spec = spec
        self._norms: dict[Path, tuple[tuple[int, ...], Normalizer]] = {}
        self._lock = threading.Lock()

    def read(
        self, sample: Sample, rng: np.random.Generator, *, train: bool = True, n: int = 1
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``n`` random crops of ``sample``, from one opening of its files.

        PNG and JPEG files (and GeoTIFFs up to :data:`WHOLE_READ_PIXELS`) are
        decoded once for all ``n`` crops; larger GeoTIFFs are read window by window.

        Args:
            sample: the pair to read.
            rng: random generator choosing the windows (and augmentation).
            train: apply scale changes, road focus and augmentation.
            n: number of crops.

        Returns:
            ``n`` pairs ``(image, mask)``: ``(tile, tile, bands)`` float32 in
            [0, 1] and ``(tile, tile)`` uint8 0/1.

        Raises:
            RasterioError, OSError, ValueError, RoadsegError: the files cannot be read.
        """
        spec = self.spec
        tile = spec.tile_size
        crops = []
        with _open(sample.image) as src:
            bands, norm = self._normalizer(sample.image, src)
            small = min(src.width, src.height) < tile
            sides = []
            candidates = []
            for _ in range(n):
                scale = 1.0
                if train and spec.augment is not None and spec.augment.scale is not None:
                    lo, hi = spec.augment.scale
                    scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                side = min(src.width, src.height, max(8, round(tile * scale)))
                k = self.CANDIDATES if train and rng.random() < spec.road_focus else 1
                sides.append(side)
                candidates.append(
                    [
                        Window(
                            int(rng.integers(src.width - side + 1)),
                            int(rng.integers(src.height - side + 1)),
                            side,
                            side,
                        )
                        for _ in range(k)
                    ]
                )
            chosen = self._choose_windows(sample, src, candidates)
            image_source = _Source(src, bands) if n > 1 else None
            for side, (window, mask) in zip(sides, chosen, strict=True):
                if image_source is not None:
                    raw = image_source.read(window)
                else:
                    raw = src.read(list(bands), window=window)
                image = norm(np.moveaxis(raw, 0, -1))
                if side != tile:
                    if small:  # the image is smaller than a crop: pad it
                        pad = tile - side
                        image = np.pad(image, ((0, pad), (0, pad), (0, 0)), mode="reflect")
                        mask = np.pad(mask, ((0, pad), (0, pad)), mode="reflect")
                    else:
                        image = resize_square(image, tile)
                        mask = resize_square(mask, tile, nearest=True)
                if train and spec.augment is not None:
                    image, mask = augment(image, mask, rng, spec.augment)
                crops.append(
                    (np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask))
                )
        return crops

    def _choose_windows(
        self,
        sample: Sample,
        src: rasterio.io.DatasetReader,
        candidates: Sequence[Sequence[Window]],
    ) -> list[tuple[Window, np.ndarray]]:
        """For each list of candidate windows, the one with the most road, and its mask."""
        chosen = []
        if sample.is_vector:
            read_mask = _vector_mask(sample.label, src, self.spec.road_width_m)
            for windows in candidates:
                masks = [read_mask(w) for w in windows]
                best = int(np.argmax([int(m.sum()) for m in masks]))
                chosen.append((windows[best], masks[best]))
            return chosen
        with _open(sample.label) as lab:
            if (lab.width, lab.height) != (src.width, src.height):
                raise DatasetError(
                    f"{sample.label.name} is {lab.width}x{lab.height}, "
                    f"its image {src.width}x{src.height}"
                )
            lut = _colormap_lut(lab)
            many = sum(len(w) for w in candidates) > 1
            source = _Source(lab, None) if many else None
            for windows in candidates:
                masks = [
                    decode_mask(
                        source.read(w) if source is not None else lab.read(window=w),
                        self.spec.decoder,
                        lut,
                    )
                    for w in windows
                ]
                best = int(np.argmax([int(m.sum()) for m in masks]))
                chosen.append((windows[best], masks[best]))
        return chosen

    def _normalizer(
        self, path: Path, src: rasterio.io.DatasetReader
    ) -> tuple[tuple[int, ...], Normalizer]:
        with self._lock:
            cached = self._norms.get(path)
        if cached is None:
            bands = select_bands(src, self.spec.bands, self.spec.model_bands, path)
            cached = (bands, compute_normalizer(src, bands, "auto"))
            with self._lock:
                self._norms[path] = cached
        return cached


class SkipLog:
    """Files skipped because they failed while training, with their errors."""

    #: Consecutive failures after which the stream gives up.
    GIVE_UP = 50

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.reasons: dict[str, str] = {}
        self.fatal: DatasetError | None = None
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Number of failed reads."""
        return sum(self.counts.values())

    def record(self, sample: Sample, exc: BaseException) -> bool:
        """Count a failure; True the first time this file fails."""
        name = str(sample.image)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        with self._lock:
            first = name not in self.counts
            self.counts[name] += 1
            self.reasons.setdefault(name, reason)
        if first:
            log.warning("skipping %s: %s", sample.image.name, reason)
        return first


_READ_ERRORS = (RasterioError, OSError, ValueError, RoadsegError)


def crop_stream(
    samples: Sequence[Sample],
    reader: CropReader,
    *,
    seed: int | Sequence[int],
    train: bool,
    count: int | None = None,
    per_image: int = 1,
    skips: SkipLog | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Crops of ``samples``: forever for training, ``count`` fixed ones for validation.

    Training draws images with probability proportional to their area, takes
    ``per_image`` crops from each (shuffle downstream to mix them), and drops a
    file for the rest of the run once it fails. Validation visits the images in
    turn with windows fixed by ``seed``, spreading ``count`` crops evenly, so
    every epoch sees the same crops.

    Yields:
        ``(image (tile, tile, bands) float32, mask (tile, tile, 1) float32)``.

    Raises:
        DatasetError: if every file fails.
    """
    skips = skips if skips is not None else SkipLog()
    if not samples:
        return
    rng = np.random.default_rng(seed)
    alive = np.ones(len(samples), dtype=bool)
    areas = np.array(
        [float(s.size[0] * s.size[1]) if s.size else 1.0 for s in samples], dtype=np.float64
    )
    if not train:
        per_image = max(1, math.ceil((count or 0) / len(samples)))
    made = 0
    failures = 0
    visit = 0
    while count is None or made < count:
        if not alive.any() or failures >= SkipLog.GIVE_UP:
            first = next(iter(skips.reasons.items()), ("?", "?"))
            error = DatasetError(
                f"every file failed to read ({skips.total} failures), e.g. "
                f"{Path(first[0]).name}: {first[1]}"
            )
            skips.fatal = error
            raise error
        if train:
            weights = areas * alive
            k = int(rng.choice(len(samples), p=weights / weights.sum()))
        else:
            k = visit % len(samples)
            visit += 1
        n = per_image if count is None else min(per_image, count - made)
        try:
            crops = reader.read(samples[k], rng, train=train, n=n)
        except _READ_ERRORS as exc:
            skips.record(samples[k], exc)
            failures += 1
            if train or visit >= len(samples) and made == 0:
                alive[k] = False
            continue
        failures = 0
        for image, mask in crops:
            made += 1
            yield image, mask[..., None].astype(np.float32)


def make_tf_dataset(
    stream: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    *,
    tile_size: int,
    bands: int,
    batch_size: int,
    shuffle: int = 0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """A batched, prefetching ``tf.data`` pipeline over a crop generator.

    Args:
        stream: called once per pass over the data; returns a crop iterator
            (see :func:`crop_stream`).
        tile_size: crop side.
        bands: image bands.
        batch_size: crops per batch.
        shuffle: size of a shuffle buffer of crops (0: none), to mix crops
            taken from the same image into different batches.
        seed: seed of the shuffle.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_generator(
        stream,
        output_signature=(
            tf.TensorSpec((tile_size, tile_size, bands), tf.float32),
            tf.TensorSpec((tile_size, tile_size, 1), tf.float32),
        ),
    )
    if shuffle > 1:
        ds = ds.shuffle(shuffle, seed=seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
