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

Each image goes through ``predict_raster`` exactly as ``roadseg predict``
runs it (default options, the model's threshold).

Usage:
    python scripts/model_card.py [--model M.keras] [--synthetic-size 1024] [--seeds 6000-6003]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

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


def cases(tmp: Path, size: int, seeds: range) -> dict[str, list[tuple[Path, np.ndarray, tuple]]]:
    """Per set: (image path, truth mask, bands) for each image."""
    from roadseg.synthetic import SceneSpec, write_scene

    out: dict[str, list[tuple[Path, np.ndarray, tuple]]] = {"synthetic": []}
    for seed in seeds:
        paths = write_scene(tmp, size, size, SceneSpec(seed=seed), name=f"s{seed}")
        with rasterio.open(paths.mask) as ds:
            out["synthetic"].append((paths.image, ds.read(1) > 0, None))
    if DUBAI.exists():
        out["dubai-tile8"] = []
        for img in sorted((DUBAI / "images").glob("*.jpg")):
            rgb = np.asarray(Image.open(DUBAI / "masks" / f"{img.stem}.png").convert("RGB"))
            out["dubai-tile8"].append((img, np.all(rgb == DUBAI_ROAD, axis=-1), None))
    if VEGAS.exists():
        with rasterio.open(VEGAS_TRUTH) as ds:
            out["spacenet-vegas"] = [(VEGAS, ds.read(1) > 0, (1, 1, 1))]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model file (default: the bundled model)")
    p.add_argument("--synthetic-size", type=int, default=1024)
    p.add_argument("--seeds", default="6000-6003", help="synthetic seeds, FIRST-LAST")
    p.add_argument("--rho", type=float, default=3.0)
    args = p.parse_args()
    first, last = (int(v) for v in args.seeds.split("-"))

    from roadseg.metrics import MetricsAccumulator
    from roadseg.model import load_model
    from roadseg.predict import PredictOptions, predict_raster

    model = load_model(args.model)
    threshold = model.info.threshold
    print(f"model {model.path.name} (sha256 {model.sha256[:12]}), threshold {threshold:g}")
    values = np.minimum(np.arange(256) / 254.0, 1.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, items in cases(tmp, args.synthetic_size, range(first, last + 1)).items():
            acc = MetricsAccumulator(256, rho=args.rho)
            started, pixels = time.perf_counter(), 0
            for i, (image, truth, bands) in enumerate(items):
                out = tmp / f"{name}_{i}_roads.tif"
                predict_raster(image, out, model, PredictOptions(bands=bands))
                with rasterio.open(out) as ds:
                    levels = ds.read(1)
                valid = levels != 255
                acc.add(np.where(valid, levels, 0), truth, valid)
                pixels += truth.size
            r = acc.result(values, threshold)
            rows.append((name, len(items), pixels, r, time.perf_counter() - started))
    head = (
        "| set | images | Mpx | IoU | F1 | precision | recall | relaxed P | relaxed R "
        "| breakeven (at t) |"
    )
    print()
    print(f"Pooled over each set at the model's threshold {threshold:g}, rho {args.rho:g} px:")
    print()
    print(head)
    print("|" + " --- |" * 10)
    for name, n, px, r, _ in rows:
        print(
            f"| {name} | {n} | {px / 1e6:.1f} | {r.iou:.3f} | {r.f1:.3f} | {r.precision:.3f} "
            f"| {r.recall:.3f} | {r.relaxed_precision:.3f} | {r.relaxed_recall:.3f} "
            f"| {r.breakeven:.3f} ({r.breakeven_threshold:.2f}) |"
        )
    print()
    print(f"command: python scripts/model_card.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
