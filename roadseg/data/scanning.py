"""Scanning a dataset before training: :func:`scan_dataset` finds the pairs, reads
every header (sizes, bands, ground sample distance), learns the mask encoding from a
few sampled masks, splits the pairs, and reports it all in a :class:`DatasetReport`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import RasterioError

from roadseg.data.discovery import DEFAULT_VAL_FRACTION, discover_pairs, split_samples
from roadseg.data.files import MAX_LISTED, listing, relative_name
from roadseg.data.layouts import LAYOUT_NAMES
from roadseg.data.masks import infer_decoder, read_geojson, sample_masks
from roadseg.data.rasters import open_raster, pixel_size_m
from roadseg.data.types import LabelRule, MaskDecoder, Sample
from roadseg.errors import DatasetError, RoadsegError
from roadseg.preprocess import select_bands


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


#: scan_dataset's default label rule (one shared frozen instance, as a default value).
_DEFAULT_RULE = LabelRule()


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
            with open_raster(s.image) as src:
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
                read_geojson(s.label)
            else:
                with open_raster(s.label) as lab:
                    if (lab.width, lab.height) != size:
                        mismatched.append(
                            f"{relative_name(s.label, root)} is {lab.width}x{lab.height}, "
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


def _ground_sample_distance(
    gsd: float | None, gsds: Sequence[float], n_images: int, notes: list[str]
) -> tuple[float | None, str]:
    """The gsd to record and where it came from (``--gsd``, the median of the
    georeferenced images, or unknown); appends what the user should know to ``notes``."""
    if gsd is not None:
        return float(gsd), "--gsd"
    if gsds:
        gsd_value = float(np.median(gsds))
        if len(gsds) < n_images:
            notes.append(
                f"only {len(gsds)} of {n_images} images are georeferenced; "
                f"the gsd {gsd_value:.3g} m comes from those"
            )
        if max(gsds) > 1.25 * min(gsds):
            notes.append(
                f"pixel sizes vary from {min(gsds):.3g} to {max(gsds):.3g} m; "
                f"the median {gsd_value:.3g} m is recorded"
            )
        return gsd_value, "georeferencing"
    notes.append("the images carry no pixel size; pass --gsd M to record it in the model")
    return None, "unknown"


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    rule: LabelRule = _DEFAULT_RULE,
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
            f"{listing(found['unreadable'], root)}"
        )
    if found["mismatched"]:
        shown = ", ".join(found["mismatched"][:MAX_LISTED])
        more = len(found["mismatched"]) - MAX_LISTED
        errors.append(
            f"{len(found['mismatched'])} mask(s) differ in size from their image: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    if found["band_problems"]:
        first = found["band_problems"][0]
        errors.append(f"{len(found['band_problems'])} image(s) do not fit the model: {first}")

    sampled = sample_masks(checked)
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
                f"{listing([s.image for s in small], root)}"
            )
    megapixels = sum(s.size[0] * s.size[1] for s in train if s.size) / 1e6

    gsd_value, gsd_source = _ground_sample_distance(gsd, found["gsds"], len(checked), notes)

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
