#!/usr/bin/env python
"""Benchmark many-raster prediction: in-process vs 1 and 2 local Dask worker processes.

Writes COUNT synthetic scenes of SIZE x SIZE pixels (roadseg.synthetic), then
predicts all of them once per configuration, each in a fresh child process:

* ``in-process``: one process, TensorFlow's default thread pools (all cores),
  the rasters one after the other (what a shell loop over ``roadseg predict``
  does, minus the model load per file);
* ``workers=N``: a Dask LocalCluster of N worker processes, one task thread
  each, every process limited to ``cores // N`` threads through
  OMP/MKL/OPENBLAS_NUM_THREADS, TF_NUM_INTRAOP_THREADS and
  TF_NUM_INTEROP_THREADS=1 (the settings roadseg.distributed uses).

With ``--split-above MPIX``, rasters above that size are split on Dask into
regions of ``--region-rows`` rows (roadseg.regions); the in-process row always
predicts each raster whole, so the comparison also checks that the split
outputs are identical. Tiles count the halo tile rows each region adds.

Wall time includes starting the cluster and each worker's TensorFlow import
and model load, as a user sees it. Every configuration's outputs are compared
byte for byte with the in-process outputs.

Usage:
    python scripts/bench_distributed.py --count 8 --size 1024 [--workers 1 --workers 2]
    python scripts/bench_distributed.py --count 2 --size 256 --model tiny.keras  # smoke test
    python scripts/bench_distributed.py --count 1 --size 8192 --split-above 0  # one raster, split
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_one(args: argparse.Namespace) -> int:
    """Child: predict every scene under one configuration; print a JSON line."""
    from roadseg.batch import plan_jobs
    from roadseg.distributed import run_jobs, threads_per_process
    from roadseg.predict import PredictOptions

    workers = args.one_workers or None
    out = Path(args.one_out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs([str(Path(args.one_scenes) / "scene_*[0-9].tif")], output_dir=out)
    options = PredictOptions(
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    started = time.perf_counter()
    split = None if args.split_above is None else round(args.split_above * 1e6)
    result = run_jobs(
        jobs,
        args.model,
        options,
        workers=workers,
        split_above=split if split is not None else 2**62,
        region_rows=args.region_rows,
    )
    wall = time.perf_counter() - started
    failed = [f"{r.job.input.name}: {r.error}" for r in result.failed]
    threads = threads_per_process(workers) if workers else os.cpu_count()
    print(
        json.dumps(
            {
                "wall": wall,
                "tiles": result.tiles,
                "rasters": len(jobs),
                "threads": threads,
                "busy": sum(r.seconds for r in result.results),
                "failed": failed,
            }
        )
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=8, help="number of scenes (default 8)")
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    parser.add_argument(
        "--workers", type=int, action="append", help="worker processes (repeatable; default 1, 2)"
    )
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--split-above",
        type=float,
        default=None,
        metavar="MPIX",
        help="on Dask, split rasters above MPIX megapixels (default: never)",
    )
    parser.add_argument("--region-rows", type=int, default=4096)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep scenes here (default: a temp dir)"
    )
    # A child process runs one configuration (internal).
    parser.add_argument("--one-scenes", help=argparse.SUPPRESS)
    parser.add_argument("--one-out", help=argparse.SUPPRESS)
    parser.add_argument("--one-workers", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_scenes:
        return run_one(args)

    from roadseg.synthetic import SceneSpec, write_scene

    workers = args.workers or [1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        scenes = work / f"scenes_{args.size}"
        scenes.mkdir(parents=True, exist_ok=True)
        for k in range(args.count):
            if not (scenes / f"scene_{k:03d}.tif").exists():
                write_scene(scenes, args.size, args.size, SceneSpec(seed=k), name=f"scene_{k:03d}")
        rows = []
        reference: dict[str, bytes] | None = None
        for n in [0, *workers]:
            out = work / f"out_{n}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [
                sys.executable,
                __file__,
                "--one-scenes",
                str(scenes),
                "--one-out",
                str(out),
                "--one-workers",
                str(n),
                "--batch-size",
                str(args.batch_size),
                "--overlap",
                str(args.overlap),
                "--precision",
                args.precision,
                "--region-rows",
                str(args.region_rows),
            ]
            if args.split_above is not None:
                cmd += ["--split-above", str(args.split_above)]
            if args.tile_size:
                cmd += ["--tile-size", str(args.tile_size)]
            if args.model:
                cmd += ["--model", args.model]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"configuration workers={n} failed:\n{proc.stderr[-2000:]}")
            stats = json.loads(proc.stdout.strip().splitlines()[-1])
            if stats["failed"]:
                raise SystemExit(f"rasters failed: {stats['failed']}")
            produced = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
            reference = produced if reference is None else reference
            rows.append((n, stats, produced == reference))
            shutil.rmtree(out, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"model: {args.model or 'bundled'}  scenes {args.count} x {args.size}x{args.size}  "
        f"batch {args.batch_size}  overlap {args.overlap}  precision {args.precision}  "
        f"cores {cpus}"
        + (
            ""
            if args.split_above is None
            else f"  split above {args.split_above:g} MPix in {args.region_rows}-row regions"
        )
    )
    header = (
        f"| {'configuration':<18} | {'threads/proc':>12} | {'tiles':>6} | {'wall s':>7} | "
        f"{'tiles/s':>7} | {'rasters/s':>9} | {'speed-up':>8} | {'same bytes':>10} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    base = rows[0][1]["wall"]
    for n, stats, same in rows:
        name = "in-process" if n == 0 else f"{n} worker process" + ("es" if n > 1 else "")
        print(
            f"| {name:<18} | {stats['threads']:>12} | {stats['tiles']:>6} | "
            f"{stats['wall']:>7.1f} | {stats['tiles'] / stats['wall']:>7.2f} | "
            f"{stats['rasters'] / stats['wall']:>9.3f} | {base / stats['wall']:>8.2f} | "
            f"{'yes' if same else 'NO':>10} |"
        )
    print(
        "Worker processes get OMP/MKL/OPENBLAS_NUM_THREADS = TF_NUM_INTRAOP_THREADS = "
        "cores // workers and TF_NUM_INTEROP_THREADS = 1; one task thread per process."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
