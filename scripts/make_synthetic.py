"""Write procedural aerial scenes with road masks and centerlines (roadseg.synthetic).

Each scene is three files in OUT_DIR: NAME.tif (RGB GeoTIFF), NAME_mask.tif (255 = road)
and NAME_centerlines.geojson (WGS84). With --count N > 1 the scenes are NAME_000,
NAME_001, ... with seeds SEED, SEED + 1, ...

Examples:
    python scripts/make_synthetic.py /tmp/synth --size 8192 --seed 0
    python scripts/make_synthetic.py sample_data --width 640 --height 512 --seed 7 --name sample
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from roadseg.synthetic.settings import SETTINGS


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_synthetic.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output folder")
    parser.add_argument(
        "--size", type=positive_int, default=1024, help="width and height in pixels (default 1024)"
    )
    parser.add_argument("--width", type=positive_int, help="width in pixels (overrides --size)")
    parser.add_argument("--height", type=positive_int, help="height in pixels (overrides --size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene (default 0)")
    parser.add_argument(
        "--count", type=positive_int, default=1, help="number of scenes (default 1)"
    )
    parser.add_argument("--gsd", type=float, default=0.5, help="metres per pixel (default 0.5)")
    parser.add_argument("--crs", default="EPSG:32633", help="projected CRS (default EPSG:32633)")
    parser.add_argument(
        "--origin",
        type=float,
        nargs=2,
        metavar=("X", "Y"),
        default=(500000.0, 5500000.0),
        help="map coordinates of the top-left corner (default 500000 5500000)",
    )
    parser.add_argument(
        "--setting",
        default="countryside",
        choices=[*SETTINGS, "mix"],
        help="kind of landscape (default countryside; mix cycles through all with the seed)",
    )
    parser.add_argument("--name", default="scene", help="file name stem (default scene)")
    parser.add_argument(
        "--block",
        type=positive_int,
        default=1024,
        help="rendering block in pixels; bounds memory (default 1024)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="rendering threads (default 1)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from roadseg.errors import RoadsegError
    from roadseg.synthetic import SceneSpec, road_fraction, write_scene

    width = args.width or args.size
    height = args.height or args.size
    progress = not args.quiet and sys.stderr.isatty()
    for i in range(args.count):
        seed = args.seed + i
        name = args.name if args.count == 1 else f"{args.name}_{i:03d}"
        start = time.perf_counter()
        try:
            setting = args.setting
            if setting == "mix":
                setting = list(SETTINGS)[seed % len(SETTINGS)]
            spec = SceneSpec(
                seed=seed, gsd=args.gsd, crs=args.crs, origin=tuple(args.origin), setting=setting
            )
            paths = write_scene(
                args.out_dir,
                height,
                width,
                spec,
                name=name,
                block=args.block,
                progress=progress,
                overwrite=args.overwrite,
                workers=args.workers,
            )
            share = road_fraction(height, width, spec)
        except RoadsegError as exc:
            message = str(exc).replace("(overwrite=False)", "(use --overwrite to replace it)")
            print(f"make_synthetic.py: error: {message}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"make_synthetic.py: error: {exc}", file=sys.stderr)
            return 2
        seconds = time.perf_counter() - start
        print(
            f"wrote {paths.image}, {paths.mask.name}, {paths.centerlines.name}: "
            f"{width}x{height} px, seed {seed}, gsd {args.gsd} m, {args.crs}, "
            f"roads ~{100 * share:.1f} %, {seconds:.1f} s "
            f"({width * height / 1e6 / max(seconds, 1e-9):.2f} Mpx/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
