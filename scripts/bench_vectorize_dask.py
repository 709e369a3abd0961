"""Benchmark ``roadseg vectorize`` in-process against Dask LocalClusters of 1 and 2 workers.

Usage:
    python scripts/bench_vectorize_dask.py [--size 8192] [--chunk-size 2048] [--workdir DIR]

It writes (or reuses) the model-like road mask of ``scripts/bench_vectorize.py``
(SIZE x SIZE pixels, 0.5 m, UTM), then runs :func:`roadseg.vectorize.extract_network`
in this process and on a LocalCluster of 1 and of 2 worker processes (one thread
each, numeric libraries limited to cores // workers threads, as ``--workers`` does),
and prints a Markdown table: the cluster's start-up, the time of each stage
(cleaning: reading, thresholding, labelling and the decisions; thinning: the
windows, each also building its core's graph structure and reading the
probabilities of its skeleton pixels; stitch: the client joins the chunks' graphs
into the graph of the whole skeleton; graph and lines: the stitching, the graph's
cleaning and the lines, on the client in every case), the total, and whether the
network equals the in-process one exactly
(every geometry, attribute and node). Finally ``roadseg vectorize --workers 2``'s
library call writes a GeoJSON, which is compared byte for byte with the in-process
file.

Wall times on a machine shared with other work vary from run to run; the table
says how many CPUs the machine has, not how busy they were.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vectorize import write_mask  # noqa: E402


def same(a: Any, b: Any) -> bool:
    """Whether two RoadNetworks are equal in every geometry, attribute and node."""
    import numpy as np

    if len(a) != len(b):
        return False
    return (
        all(x.equals_exact(y, 0) for x, y in zip(a.lines, b.lines, strict=True))
        and a.properties() == b.properties()
        and np.array_equal(a.nodes, b.nodes)
        and np.array_equal(a.node_degree, b.node_degree)
    )


def run(path: Path, chunk: int, workers: int | None, workdir: Path) -> tuple[Any, dict[str, Any]]:
    import rasterio

    from roadseg.distributed import dask_client
    from roadseg.raster_io import gdal_env
    from roadseg.vectorize import RasterSource, VectorizeOptions, extract_network

    options = VectorizeOptions(chunk_size=chunk)
    stats: dict[str, Any] = {"start_s": 0.0}
    with gdal_env(), rasterio.open(path) as ds:
        source = RasterSource(ds)
        if workers is None:
            t0 = time.perf_counter()
            net = extract_network(source, options, temp_dir=workdir, stats=stats)
        else:
            t = time.perf_counter()
            with dask_client(workers=workers) as client:
                client.wait_for_workers(workers)
                stats["start_s"] = time.perf_counter() - t
                t0 = time.perf_counter()
                net = extract_network(source, options, temp_dir=workdir, stats=stats, client=client)
    stats["run_s"] = time.perf_counter() - t0
    return net, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="mask side in pixels")
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench_out"))
    parser.add_argument("--mask", type=Path, default=None, help="use this mask instead")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.mask
    if path is None:
        path = args.workdir / f"bench_mask_{args.size}_{args.seed}.tif"
        if not path.exists():
            t = time.perf_counter()
            write_mask(path, args.size, args.seed)
            print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)

    rows = []
    reference = None
    for label, workers in (("in-process", None), ("Dask, 1 worker", 1), ("Dask, 2 workers", 2)):
        print(f"running {label}...", file=sys.stderr)
        net, stats = run(path, args.chunk_size, workers, args.workdir)
        if reference is None:
            reference = net
        rows.append((label, stats, "reference" if workers is None else same(reference, net)))

    from roadseg.vectorize import VectorizeOptions, vectorize_raster

    files = []
    for workers in (None, 2):
        out = args.workdir / f"bench_{'here' if workers is None else 'dask'}.geojson"
        vectorize_raster(path, out, VectorizeOptions(chunk_size=args.chunk_size, overwrite=True),
                         workers=workers)  # fmt: skip
        files.append(out.read_bytes())

    import rasterio

    with rasterio.open(path) as ds:
        size = f"{ds.width}x{ds.height}"
        chunks = -(-ds.width // args.chunk_size) * -(-ds.height // args.chunk_size)
    print(
        f"\nmask {size}, chunks of {args.chunk_size} px ({chunks} chunks), {os.cpu_count()} CPUs "
        f"(shared with other work: times vary)\n"
    )
    print(
        "| run | cluster start (s) | cleaning (s) | thinning and chunk graphs (s) "
        "| stitch (s) | graph and lines (s) | total (s) | network equal to in-process |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, s, equal in rows:
        print(
            f"| {label} | {s['start_s']:.1f} | {s['clean_s']:.1f} | {s['skeleton_s']:.1f} "
            f"| {s['stitch_s']:.2f} | {s['graph_s']:.1f} | {s['start_s'] + s['run_s']:.1f} "
            f"| {equal} |"
        )
    print(
        f"\nGeoJSON written with workers=2 equals the in-process file byte for byte: "
        f"{files[0] == files[1]} ({len(files[0])} bytes); halo {rows[0][1]['halo']} px, "
        f"{rows[0][1]['skeleton_pixels']} skeleton pixels"
    )


if __name__ == "__main__":
    main()
