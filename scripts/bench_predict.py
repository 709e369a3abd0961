#!/usr/bin/env python
"""Benchmark ``roadseg predict`` on a synthetic raster of a given size.

Prints one table row per size: tiles, tiles/s, Mpix/s, wall time, peak RSS of
the predict process (measured with wait4 around a child process, as
``/usr/bin/time -v`` does), and the model-only time for the same number of
tiles (the network on ready-made batches, nothing else): the ratio of the two
is what the pipeline around the model costs.

Usage:
    python scripts/bench_predict.py --size 2048 --size 4096 [--model M.keras] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_child(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB) of that process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed: {err.strip()}")
    return wall, usage.ru_maxrss / 1024.0


def model_only_seconds(model_path: str | None, tiles: int, tile: int, batch: int) -> float:
    import numpy as np

    from roadseg.model import load_model
    from roadseg.predict import make_infer_fn

    loaded = load_model(model_path)
    infer = make_infer_fn(loaded.model, tile, loaded.info.bands)
    rng = np.random.default_rng(0)
    x = rng.random((batch, tile, tile, loaded.info.bands), dtype=np.float32)
    infer(x)  # trace once, as predict does before its first batch
    t0 = time.perf_counter()
    done = 0
    while done < tiles:
        n = min(batch, tiles - done)
        infer(x[:n])
        done += n
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", type=int, action="append", help="raster side in pixels (repeatable)"
    )
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep rasters here (default: a temp dir)"
    )
    args = parser.parse_args()
    sizes = args.size or [2048]

    from roadseg.model import load_model
    from roadseg.synthetic import SceneSpec, write_scene
    from roadseg.tiling import tile_grid

    info = load_model(args.model).info
    tile = args.tile_size or info.tile_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            scene = work / f"bench_{size}.tif"
            if not scene.exists():
                write_scene(work, size, size, SceneSpec(seed=size), name=f"bench_{size}")
            out = work / f"bench_{size}_roads.tif"
            cmd = [
                sys.executable,
                "-m",
                "roadseg",
                "predict",
                str(scene),
                "-o",
                str(out),
                "--overwrite",
                "--quiet",
                "--batch-size",
                str(args.batch_size),
                "--overlap",
                str(args.overlap),
                "--tile-size",
                str(tile),
            ]
            if args.model:
                cmd += ["--model", args.model]
            wall, rss = run_child(cmd)
            tiles = len(tile_grid(size, size, tile, args.overlap))
            model_s = model_only_seconds(args.model, tiles, tile, args.batch_size)
            rows.append((size, tiles, wall, rss, model_s))

    print(
        f"model: {args.model or 'bundled'}  tile {tile}  overlap {args.overlap}  "
        f"batch {args.batch_size}  cpus {os.cpu_count()}"
    )
    header = (
        f"| {'size':>11} | {'tiles':>6} | {'tiles/s':>7} | {'Mpix/s':>6} | {'wall s':>7} | "
        f"{'peak RSS MB':>11} | {'model-only s':>12} | {'wall/model':>10} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for size, tiles, wall, rss, model_s in rows:
        print(
            f"| {f'{size}x{size}':>11} | {tiles:>6} | {tiles / wall:>7.2f} | "
            f"{size * size / wall / 1e6:>6.2f} | {wall:>7.1f} | {rss:>11.0f} | {model_s:>12.1f} | "
            f"{wall / model_s:>10.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
