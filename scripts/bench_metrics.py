"""Benchmark ``roadseg.metrics.evaluate_rasters`` on synthetic square road rasters.

Writes, for each size, a truth mask (a grid of straight and diagonal roads) and
a ``roadseg predict``-style probability raster (uint8, scale 1/254, nodata 255,
tiled and DEFLATE-compressed: most roads found one pixel off, plus speckle) to a
temporary folder, strip by strip. Each evaluation then runs in a fresh child
process so its peak RSS is its own, not the generator's.

Usage:
    python scripts/bench_metrics.py                     # 2000, 5000, 10000
    python scripts/bench_metrics.py --sizes 1000 3000 --rho 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

STRIP = 512


def truth_strip(r0: int, r1: int, n: int, *, shift: int = 0, diagonals: bool = True) -> np.ndarray:
    """Rows ``r0:r1`` of an n x n road mask (0/1), optionally shifted right by ``shift``."""
    y, x = np.ogrid[r0:r1, 0:n]
    x = x - shift
    spacing = max(n // 9, 50)
    width = 4
    m = (y % spacing < width) | ((x + spacing // 3) % spacing < width)
    m |= (x - y) % (3 * spacing) < width
    if diagonals:
        m |= (x + 2 * y) % (4 * spacing) < width + 1
    return m.astype(np.uint8)


def write_pair(folder: Path, n: int, dtype: str = "uint8", seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    pred_path, truth_path = folder / f"pred_{n}.tif", folder / f"truth_{n}.tif"
    pred_profile = {**profile, "dtype": dtype, "nodata": 255 if dtype == "uint8" else -1}
    with (
        rasterio.open(truth_path, "w", **profile) as truth_dst,
        rasterio.open(pred_path, "w", **pred_profile) as pred_dst,
    ):
        if dtype == "uint8":
            pred_dst.scales = (1 / 254,)
        for r0 in range(0, n, STRIP):
            r1 = min(r0 + STRIP, n)
            window = rasterio.windows.Window(0, r0, n, r1 - r0)
            truth_dst.write(truth_strip(r0, r1, n)[None], window=window)
            # Roads found one pixel off, one family of diagonals missed, speckle
            # (1 in 128 background pixels at 0.5).
            noise = rng.integers(0, 128, size=(r1 - r0, n), dtype=np.uint8)
            found = truth_strip(r0, r1, n, shift=1, diagonals=False)
            prob = np.minimum(found * 170 + noise, 254).astype(np.uint8)
            if dtype != "uint8":
                prob = (prob / 254).astype(dtype)
            pred_dst.write(prob[None], window=window)
    return pred_path, truth_path


def child(pred: str, truth: str, rho: float) -> None:
    """Run one evaluation and print its timing and peak RSS as JSON."""
    from roadseg.metrics import evaluate_rasters

    start = time.perf_counter()
    result = evaluate_rasters(pred, truth, rho=rho)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": peak_kib / 1024,
                "relaxed_precision": result.relaxed_precision,
                "relaxed_recall": result.relaxed_recall,
                "breakeven": result.breakeven,
                "iou": result.iou,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    parser.add_argument("--rho", type=float, default=3.0)
    parser.add_argument(
        "--dtype",
        choices=["uint8", "float32"],
        default="uint8",
        help="prediction raster: uint8 as roadseg predict writes it, or float32 (--float)",
    )
    parser.add_argument("--child", nargs=2, metavar=("PRED", "TRUTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, rho=args.rho)
        return
    header = (
        f"{'size':>7} {'Mpx':>7} {'write s':>8} {'eval s':>7} {'Mpx/s':>7} {'peak RSS MiB':>12}"
        f" {'IoU':>6} {'rel P':>6} {'rel R':>6} {'BEP':>6}"
    )
    print(f"evaluate_rasters, rho {args.rho:g}, {args.dtype} probability vs mask GeoTIFFs")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        for n in args.sizes:
            start = time.perf_counter()
            pred, truth = write_pair(Path(tmp), n, args.dtype)
            written = time.perf_counter() - start
            command = [sys.executable, __file__, "--rho", str(args.rho)]
            out = subprocess.run(
                [*command, "--child", str(pred), str(truth)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            mpx = n * n / 1e6
            print(
                f"{n:>7} {mpx:>7.1f} {written:>8.1f} {r['seconds']:>7.2f} "
                f"{mpx / r['seconds']:>7.1f} {r['peak_mib']:>12.0f} {r['iou']:>6.3f} "
                f"{r['relaxed_precision']:>6.3f} {r['relaxed_recall']:>6.3f} "
                f"{r['breakeven']:>6.3f}",
                flush=True,
            )
            pred.unlink()
            truth.unlink()


if __name__ == "__main__":
    main()
