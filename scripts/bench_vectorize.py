"""Benchmark ``roadseg vectorize`` against a plain skeleton-and-walk pipeline.

Usage:
    python scripts/bench_vectorize.py [--size 8192] [--chunk-size 2048] [--workdir DIR]

It writes a model-like road mask GeoTIFF of SIZE x SIZE pixels (0.5 m, UTM): a
street network with arterials, curves and roundabouts, ragged edges, speckle,
holes and gaps, generated in strips so that making it needs little memory. Then
each pipeline runs in a fresh Python process on that file and reports its wall
time and its peak resident memory (``ru_maxrss``):

* roadseg: :func:`roadseg.vectorize.extract_network` (chunked, cleaned, graph
  cleaned, lines simplified), without writing the output file;
* plain: read the whole mask, ``skimage.morphology.skeletonize``, neighbour counts
  by convolution, then a pixel-by-pixel walk in Python from every node along every
  branch to the next node (what sknw-style code does); no cleaning, no pruning.

A third process only imports the libraries, to show the interpreter's own share.
Both read through :func:`roadseg.raster_io.gdal_env` (GDAL's block cache capped
as in the CLI). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GSD = 0.5


# --------------------------------------------------------------------------------------
# The test mask
# --------------------------------------------------------------------------------------


def _network(size: int, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Centerlines (pixel x, y arrays) with widths in metres."""
    lines: list[tuple[np.ndarray, float]] = []
    extent = size * GSD
    t = np.linspace(0.0, 1.0, 64)
    # Streets: a jittered grid, gently curved, 80-160 m apart.
    for axis in (0, 1):
        pos = 40.0
        while pos < extent:
            wobble = rng.uniform(-6, 6) * np.sin(t * math.pi * rng.uniform(1, 3))
            a = np.full(t.size, pos) + wobble
            b = t * (extent + 40) - 20
            xy = np.stack([a, b] if axis == 0 else [b, a], axis=1) / GSD
            lines.append((xy, float(rng.choice([5.0, 6.0, 7.0, 8.0]))))
            pos += rng.uniform(80, 160)
    # Arterials: long diagonals, wide.
    for _ in range(max(1, size // 4096)):
        y0, y1 = rng.uniform(0, extent, 2)
        xy = np.stack([t * (extent + 40) - 20, y0 + (y1 - y0) * t], axis=1) / GSD
        lines.append((xy, 14.0))
    # Roundabouts.
    for _ in range(max(1, size // 2048)):
        cx, cy = rng.uniform(100, extent - 100, 2)
        ang = np.linspace(0, 2 * math.pi, 90)
        r = rng.uniform(15, 30)
        lines.append((np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], 1) / GSD, 6.0))
    return lines


def write_mask(path: Path, size: int, seed: int = 0, strip: int = 512) -> None:
    """Write the degraded road mask, one strip of rows at a time."""
    import rasterio
    from affine import Affine
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    lines = _network(size, rng)
    # Dense points on every line, labelled with the line's index.
    pts, lab = [], []
    for i, (xy, _) in enumerate(lines):
        seg = np.hypot(*np.diff(xy, axis=0).T)
        n = np.maximum(np.ceil(seg / 0.5).astype(int), 1)
        for (p, q), k in zip(zip(xy[:-1], xy[1:], strict=True), n, strict=True):
            s = np.linspace(0, 1, k, endpoint=False)[:, None]
            pts.append(p + (q - p) * s)
            lab.append(np.full(k, i + 1))
    allpts = np.concatenate(pts)
    alllab = np.concatenate(lab)
    widths = np.array([0.0] + [w for _, w in lines])
    gaps = rng.uniform(0, size, (size * size // 400_000, 2))  # gap centres (x, y)
    halo = 48
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": Affine(GSD, 0, 500000.0, 0, -GSD, 5500000.0),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "nodata": None,
    }
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, strip):
            r1 = min(size, r0 + strip)
            a0, a1 = max(0, r0 - halo), min(size, r1 + halo)
            srng = np.random.default_rng([seed, r0])
            label = np.zeros((a1 - a0, size), np.int32)
            sel = (allpts[:, 1] >= a0) & (allpts[:, 1] < a1) & (allpts[:, 0] >= 0)
            sel &= allpts[:, 0] < size
            rr = allpts[sel, 1].astype(int) - a0
            cc = allpts[sel, 0].astype(int)
            label[rr, cc] = alllab[sel]
            dist, (ir, ic) = ndi.distance_transform_edt(label == 0, return_indices=True)
            half = widths[label[ir, ic]] / 2.0
            del ir, ic
            noise = ndi.gaussian_filter(srng.standard_normal(label.shape), 4.0)
            noise = noise / max(noise.std(), 1e-9) * 0.4 + srng.standard_normal(label.shape) * 0.2
            road = dist * GSD <= half + noise
            del dist, half, noise
            road |= ndi.binary_dilation(srng.random(road.shape) < 0.002)  # speckle
            road &= ~ndi.binary_dilation(srng.random(road.shape) < 0.002)  # holes
            yy = np.arange(a0, a1)[:, None]
            xx = np.arange(size)[None, :]
            for gx, gy in gaps:
                if a0 - 12 <= gy < a1 + 12:
                    road &= (yy - gy) ** 2 + (xx - gx) ** 2 > (5.0 / GSD) ** 2
            dst.write(road[r0 - a0 : r1 - a0].astype(np.uint8), 1, window=((r0, r1), (0, size)))


# --------------------------------------------------------------------------------------
# The pipelines (each run in its own process)
# --------------------------------------------------------------------------------------


def run_roadseg(path: Path, chunk: int) -> dict[str, object]:
    import rasterio

    from roadseg.raster_io import gdal_env
    from roadseg.vectorize import RasterSource, VectorizeOptions, extract_network

    t0 = time.perf_counter()
    stats: dict[str, object] = {}
    with gdal_env(), rasterio.open(path) as ds:
        net = extract_network(RasterSource(ds), VectorizeOptions(chunk_size=chunk), stats=stats)
    stats.update(seconds=time.perf_counter() - t0, lines=len(net), km=net.total_length_m / 1e3)
    return stats


def run_plain(path: Path) -> dict[str, object]:
    import rasterio
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    from roadseg.raster_io import gdal_env

    t0 = time.perf_counter()
    with gdal_env(), rasterio.open(path) as ds:
        mask = ds.read(1) > 0
    skel = skeletonize(mask)
    del mask
    count = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant")
    node = skel & (count != 3)  # the pixel itself plus other than two neighbours
    h, w = skel.shape
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    visited = np.zeros_like(skel)
    edges = 0
    pixels = 0
    for r, c in zip(*np.nonzero(node), strict=True):
        visited[r, c] = True
        for dr, dc in offsets:
            rr, cc = r + dr, c + dc
            if not (0 <= rr < h and 0 <= cc < w) or not skel[rr, cc] or visited[rr, cc]:
                continue
            path = [(r, c)]
            pr, pc = rr, cc
            while True:
                path.append((pr, pc))
                if node[pr, pc]:
                    break
                visited[pr, pc] = True
                nxt = None
                for er, ec in offsets:
                    qr, qc = pr + er, pc + ec
                    if 0 <= qr < h and 0 <= qc < w and skel[qr, qc] and not visited[qr, qc]:
                        nxt = (qr, qc)
                        if node[qr, qc]:
                            break
                if nxt is None:
                    break
                pr, pc = nxt
            edges += 1
            pixels += len(path)
    return {
        "seconds": time.perf_counter() - t0,
        "lines": edges,
        "skeleton_pixels": int(skel.sum()),
        "walked_pixels": pixels,
    }


def _child(kind: str, path: Path, chunk: int) -> None:
    if kind == "roadseg":
        out = run_roadseg(path, chunk)
    elif kind == "plain":
        out = run_plain(path)
    else:  # import only: the interpreter and libraries
        import rasterio  # noqa: F401
        import skimage.morphology  # noqa: F401

        import roadseg.vectorize  # noqa: F401

        out = {"seconds": 0.0}
    out["peak_mb"] = _peak_rss_mb()
    print(json.dumps(out))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image, MB.

    ``VmHWM`` is reset by ``execve``; ``ru_maxrss`` is not (a child would report
    its parent's peak), so it is only the fallback off Linux.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _spawn(kind: str, path: Path, chunk: int) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--mask",
            str(path),
            "--chunk-size",
            str(chunk),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="mask side in pixels")
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench_out"))
    parser.add_argument("--mask", type=Path, default=None, help="use this mask instead")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.mask, args.chunk_size)
        return
    path = args.mask
    if path is None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        path = args.workdir / f"bench_mask_{args.size}_{args.seed}.tif"
        if not path.exists():
            t = time.perf_counter()
            write_mask(path, args.size, args.seed)
            print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    import rasterio

    with rasterio.open(path) as ds:
        mpx = ds.width * ds.height / 1e6
        size = f"{ds.width}x{ds.height}"
    base = _spawn("imports", path, args.chunk_size)
    ours = _spawn("roadseg", path, args.chunk_size)
    rows = [
        ("interpreter + imports only", base),
        (f"roadseg vectorize (chunks {args.chunk_size})", ours),
    ]
    if not args.skip_plain:
        rows.append(("plain: skeletonize + pixel walk", _spawn("plain", path, args.chunk_size)))
    print(f"\nmask {size} ({mpx:.1f} Mpx), {os.cpu_count()} CPUs\n")
    print("| pipeline | seconds | Mpx/s | peak RSS (MB) | lines |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in rows:
        secs = float(r["seconds"])
        rate = f"{mpx / secs:.1f}" if secs > 0 else "-"
        print(f"| {name} | {secs:.1f} | {rate} | {r['peak_mb']:.0f} | {r.get('lines', '-')} |")
    print(
        f"\nroadseg stages: cleaning {ours['clean_s']:.1f} s, thinning {ours['skeleton_s']:.1f} s, "
        f"graph and lines {ours['graph_s']:.1f} s; {ours['skeleton_pixels']} skeleton pixels, "
        f"halo {ours['halo']} px, {ours['chunks']} chunks, {ours['km']:.0f} km of road"
    )


if __name__ == "__main__":
    main()
