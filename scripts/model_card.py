#!/usr/bin/env python
"""Measure a model for its card: pooled metrics on held-out data, one table.

Sets (each pooled over all its pixels, as the field reports; rho = 3 px):

- ``synthetic``: procedural scenes from ``roadseg.synthetic`` with seeds that
  neither training (1000-1039) nor threshold selection (5000-5003) used.
- ``dubai-tile8``: the 9 images of Dubai Tile 8 (CC0), held out from training;
  road = RGB (110, 193, 228). Tile 8 also chose the stored threshold, so its
  numbers at that threshold are slightly optimistic.
- ``spacenet-vegas``: the real SpaceNet-3 Las Vegas chip in ../shared/data
  (11-bit panchromatic, another sensor; fed as --bands 1,1,1), truth = its
  centerlines buffered to 4 m (``sample_road_raster_mask.tif``).

Each image goes through ``predict_at_model_gsd`` exactly as ``roadseg predict``
runs it (default options, the model's threshold, inputs read at the model's GSD
when it records one; ``--no-resample`` reads them as they are). Besides the metrics at the
stored threshold, the table gives the best pixel F1 over all thresholds (so
calibration is not what is measured) and the F1 of calling every pixel road
(the floor a model must clear). ``--settings`` scores synthetic scenes of each
setting of ``roadseg.synthetic.SETTINGS`` (seeds unused by training);
``--previews DIR`` also writes the previews of ``rasterio/cogeo.tif``,
``spacenet/pan1.tif`` and ``spacenet/sample_geotiff.tif`` to look at.

Usage:
    python scripts/model_card.py [--model M.keras] [--synthetic-size 1024] [--seeds 6000-6003]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DUBAI = SHARED / "dubai" / "Semantic segmentation dataset" / "Tile 8"
DUBAI_ROAD = (110, 193, 228)
VEGAS = SHARED / "spacenet" / "road_mask_input.tif"
VEGAS_TRUTH = SHARED / "spacenet" / "sample_road_raster_mask.tif"


#: One image: (path, truth mask, bands, the GSD to read it at or None for its own).
Case = tuple[Path, np.ndarray, "tuple | None", "float | None"]
#: The Dubai images carry no georeferencing; training reads them at this GSD
#: (``train_default_model.DUBAI_GSD``), and so does scoring unless told otherwise.
DUBAI_GSD = 1.2


def cases(
    tmp: Path, size: int, seeds: range, settings: bool, dubai_gsd: float | None = DUBAI_GSD
) -> dict[str, list[Case]]:
    """Per set: (image path, truth mask, bands) for each image."""
    from roadseg.synthetic import SETTINGS, SceneSpec, write_scene

    out: dict[str, list[Case]] = {}
    names = sorted(SETTINGS) if settings else ["countryside"]
    for setting in names:
        key = "synthetic" if not settings else f"synthetic-{setting}"
        out[key] = []
        for seed in seeds:
            spec = SceneSpec(seed=seed, setting=setting)
            paths = write_scene(tmp, size, size, spec, name=f"s{setting}{seed}")
            with rasterio.open(paths.mask) as ds:
                out[key].append((paths.image, ds.read(1) > 0, None, None))
    if DUBAI.exists():
        out["dubai-tile8"] = []
        for img in sorted((DUBAI / "images").glob("*.jpg")):
            rgb = np.asarray(Image.open(DUBAI / "masks" / f"{img.stem}.png").convert("RGB"))
            out["dubai-tile8"].append((img, np.all(rgb == DUBAI_ROAD, axis=-1), None, dubai_gsd))
    if VEGAS.exists():
        with rasterio.open(VEGAS_TRUTH) as ds:
            out["spacenet-vegas"] = [(VEGAS, ds.read(1) > 0, (1, 1, 1), None)]
    return out


PREVIEWS = [
    ("rasterio/cogeo.tif", None),
    ("spacenet/pan1.tif", (1, 1, 1)),
    ("spacenet/sample_geotiff.tif", (1, 1, 1)),
]


def write_previews(model: object, folder: Path) -> None:
    """Previews (image with roads in red) of real rasters nobody labelled here."""
    from roadseg.predict import PredictOptions
    from roadseg.resample import predict_at_model_gsd

    folder.mkdir(parents=True, exist_ok=True)
    for rel, bands in PREVIEWS:
        src = SHARED / rel
        if not src.is_file():
            continue
        stem = Path(rel).stem
        options = PredictOptions(
            bands=bands, preview_path=folder / f"{stem}_preview.png", overwrite=True
        )
        predict_at_model_gsd(src, folder / f"{stem}_roads.tif", model, options)  # type: ignore[arg-type]
        print(f"wrote {folder / (stem + '_preview.png')}")


Row = tuple[str, int, int, object, tuple[float, float, float]]


def measure(
    model: Any,
    sets: dict[str, list[Case]],
    tmp: Path,
    *,
    rho: float = 3.0,
    resample: bool = True,
) -> list[Row]:
    """Per set: (name, images, pixels, metrics at the model's threshold,
    (best F1, its threshold, every-pixel F1)), each pooled over the set."""
    from roadseg.encoding import PROB_NODATA, UINT8_PROBABILITIES
    from roadseg.metrics import MetricsAccumulator
    from roadseg.predict import PredictOptions
    from roadseg.resample import predict_at_model_gsd

    threshold = model.info.threshold
    rows: list[Row] = []
    for name, items in sets.items():
        acc = MetricsAccumulator(256, rho=rho)
        pixels = 0
        for i, (image, truth, bands, gsd) in enumerate(items):
            out = tmp / f"{name}_{i}_roads.tif"
            options = PredictOptions(bands=bands, overwrite=True)
            predict_at_model_gsd(image, out, model, options, resample=resample, gsd=gsd)
            with rasterio.open(out) as ds:
                levels = ds.read(1)
            valid = levels != PROB_NODATA
            acc.add(np.where(valid, levels, 0), truth, valid)
            pixels += truth.size
        r = acc.result(UINT8_PROBABILITIES, threshold)
        curve = acc.curve(UINT8_PROBABILITIES)
        f1 = np.nan_to_num(curve.f1)
        best = int(np.argmax(f1))
        floor = float(curve.f1[0])  # threshold 0: every valid pixel is road
        rows.append(
            (name, len(items), pixels, r, (float(f1[best]), float(curve.thresholds[best]), floor))
        )
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument("--synthetic-size", type=int, default=1024)
    p.add_argument("--seeds", default="6000-6003", help="synthetic seeds, FIRST-LAST")
    p.add_argument("--rho", type=float, default=3.0)
    p.add_argument("--settings", action="store_true", help="one set per synthetic setting")
    p.add_argument("--no-resample", action="store_true", help="read inputs as they are")
    p.add_argument("--previews", type=Path, default=None, help="write previews to this folder")
    p.add_argument(
        "--dubai-gsd",
        type=float,
        default=DUBAI_GSD,
        help="GSD to read the (ungeoreferenced) Dubai images at; 0 reads them as they are",
    )
    p.add_argument(
        "--sets",
        default=None,
        help="only these sets (name prefixes, comma-separated): dubai,spacenet",
    )
    args = p.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))

    from roadseg.model import load_model

    model = load_model(args.model)
    threshold = model.info.threshold
    print(f"model {model.path.name} (sha256 {model.sha256[:12]}), threshold {threshold:g}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = cases(
            tmp,
            args.synthetic_size,
            range(first, last + 1),
            args.settings,
            args.dubai_gsd or None,
        )
        if args.sets:
            wanted = args.sets.split(",")
            sets = {k: v for k, v in sets.items() if any(k.startswith(w) for w in wanted)}
        rows = measure(model, sets, tmp, rho=args.rho, resample=not args.no_resample)
    head = (
        "| set | images | Mpx | best F1 (at t) | every-pixel F1 | IoU | F1 | precision | recall "
        "| relaxed P | relaxed R | breakeven (at t) |"
    )
    print()
    print(
        f"Pooled over each set; IoU to breakeven at the model's threshold {threshold:g}, "
        f"rho {args.rho:g} px:"
    )
    print()
    print(head)
    print("|" + " --- |" * 12)
    for name, n, px, r, (best_f1, best_t, floor) in rows:
        print(
            f"| {name} | {n} | {px / 1e6:.1f} | {best_f1:.3f} ({best_t:.2f}) | {floor:.3f} "
            f"| {r.iou:.3f} | {r.f1:.3f} | {r.precision:.3f} "
            f"| {r.recall:.3f} | {r.relaxed_precision:.3f} | {r.relaxed_recall:.3f} "
            f"| {r.breakeven:.3f} ({r.breakeven_threshold:.2f}) |"
        )
    if args.previews is not None:
        write_previews(model, args.previews)
    print()
    print(f"command: python scripts/model_card.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
