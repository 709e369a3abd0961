"""Byte-for-byte comparison of roadseg's outputs between two revisions.

A restructuring must not change a single output byte. This script checks out
``--before`` (a git revision) into a temporary worktree, runs the same commands
with that code and with the working tree (``--after``, default: this checkout),
and compares every file they write:

* synthetic scenes (``scripts/make_synthetic.py``): image, mask, centerlines;
* ``roadseg predict``: probabilities, mask, preview (synthetic scenes, the
  bundled sample, and ../shared/data when present), uint8 and ``--float``;
* ``roadseg vectorize``: GeoJSON, from a mask and from probabilities with
  hysteresis;
* ``roadseg evaluate --json``: raster truth, vector truth and two folders;
* a short ``roadseg train`` on fixed seeds: the weights and the stored
  metadata of the model file (the ``.keras`` zip itself carries timestamps),
  the run's ``log.csv`` minus its seconds column.

Both sides run with the same Python (this one) and the same environment; only
``PYTHONPATH`` differs. Inputs are made once, by the *before* code, and given
to both. Prints one table row per output and exits non-zero if any differs.

    python scripts/compare_outputs.py --before main~3
    python scripts/compare_outputs.py --before v0.1.0 --skip-train --keep /tmp/cmp
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

#: Real rasters from ../shared/data predicted by both sides (path, extra predict options).
SHARED_INPUTS: list[tuple[str, list[str]]] = [
    ("rasterio/cogeo.tif", []),
    ("spacenet/road_mask_input.tif", ["--bands", "1,1,1"]),
    ("spacenet/sample_geotiff.tif", ["--bands", "1,1,1"]),
]


def run(code: Path, args: list[str], cwd: Path, *, log: Path) -> None:
    """Run ``python ARGS`` with ``code`` first on the import path."""
    env = dict(os.environ, PYTHONPATH=str(code), TF_CPP_MIN_LOG_LEVEL="3")
    with log.open("a") as out:
        out.write(f"$ {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            [sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=out, check=False
        )
    if proc.returncode != 0:
        raise SystemExit(f"{code}: `{' '.join(args)}` failed (exit {proc.returncode}); see {log}")


def roadseg(code: Path, args: list[str], cwd: Path, *, log: Path) -> None:
    run(code, ["-m", "roadseg", *args], cwd, log=log)


def make_scenes(code: Path, dest: Path, *, log: Path) -> None:
    """Two scenes (a square one at 0.5 m, an odd-sized one at 0.8 m) in ``dest``."""
    script = str(code / "scripts" / "make_synthetic.py")
    common = ["--quiet"]
    run(
        code,
        [script, str(dest), "--size", "768", "--seed", "3", "--name", "city", *common],
        dest.parent,
        log=log,
    )
    run(
        code,
        [
            script,
            str(dest),
            "--width",
            "700",
            "--height",
            "520",
            "--seed",
            "11",
            "--gsd",
            "0.8",
            "--name",
            "odd",
            *common,
        ],
        dest.parent,
        log=log,
    )


def make_inputs(code: Path, work: Path, *, log: Path) -> dict[str, Path]:
    """Scenes and a tiny training set, written once by the *before* code."""
    inputs = work / "inputs"
    inputs.mkdir()
    make_scenes(code, inputs, log=log)
    scenes = work / "trainset"
    script = str(code / "scripts" / "make_synthetic.py")
    run(
        code,
        [script, str(scenes), "--size", "256", "--seed", "20", "--count", "4", "--quiet"],
        work,
        log=log,
    )
    return {"city": inputs / "city.tif", "odd": inputs / "odd.tif", "train": scenes}


def side(code: Path, out: Path, inputs: dict[str, Path], *, train: bool, log: Path) -> None:
    """Every command with one side's code; outputs under ``out``."""
    out.mkdir(parents=True)
    r = lambda *a: roadseg(code, list(a), out, log=log)  # noqa: E731
    rasters: list[tuple[str, Path, list[str]]] = [
        ("city", inputs["city"], []),
        ("odd", inputs["odd"], []),
        ("sample", ROOT / "sample_data" / "sample.tif", []),
    ]
    if SHARED.is_dir():
        for rel, extra in SHARED_INPUTS:
            if (SHARED / rel).is_file():
                rasters.append((Path(rel).stem, SHARED / rel, extra))
    for name, path, extra in rasters:
        r(
            "predict",
            str(path),
            "-o",
            f"{name}_prob.tif",
            "--mask",
            f"{name}_mask.tif",
            "--preview",
            f"{name}_preview.png",
            "--quiet",
            "--precision",
            "float32",
            *extra,
        )
    r(
        "predict",
        str(inputs["city"]),
        "-o",
        "city_float.tif",
        "--float",
        "--quiet",
        "--precision",
        "float32",
    )

    r("vectorize", "city_mask.tif", "-o", "city_mask_lines.geojson", "--quiet")
    r(
        "vectorize",
        "city_prob.tif",
        "-o",
        "city_prob_lines.geojson",
        "-t",
        "0.3",
        "--low",
        "0.1",
        "--quiet",
    )
    r(
        "vectorize",
        "sample_prob.tif",
        "-o",
        "sample_lines.geojson",
        "--chunk-size",
        "256",
        "--quiet",
    )

    city_truth = str(inputs["city"].with_name("city_mask.tif"))
    evaluations = [
        ("eval_city.json", ["city_prob.tif", city_truth]),
        ("eval_city_float.json", ["city_float.tif", city_truth, "--threshold", "0.4"]),
        (
            "eval_city_lines.json",
            ["city_prob_lines.geojson", str(inputs["city"].with_name("city_centerlines.geojson"))],
        ),
        (
            "eval_sample.json",
            ["sample_prob.tif", str(ROOT / "sample_data" / "sample_mask.tif"), "--rho", "2"],
        ),
    ]
    if (out / "road_mask_input_prob.tif").is_file():
        evaluations.append(
            (
                "eval_vegas.json",
                [
                    "road_mask_input_prob.tif",
                    str(SHARED / "spacenet" / "sample_road_raster_mask.tif"),
                ],
            )
        )
    for name, args in evaluations:
        env = dict(os.environ, PYTHONPATH=str(code), TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, "-m", "roadseg", "evaluate", *args, "--json"],
            cwd=out,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{code}: evaluate {args} failed: {proc.stderr.strip()[-400:]}")
        (out / name).write_text(proc.stdout)

    if train:
        r(
            "train",
            "--data",
            str(inputs["train"]),
            "-o",
            "model.keras",
            "--run-dir",
            "run",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "6",
            "--val-steps",
            "2",
            "--batch-size",
            "4",
            "--filters",
            "16,16,16,16",
            "--tile-size",
            "64",
            "--precision",
            "float32",
            "--seed",
            "5",
            "--gsd",
            "0.5",
        )


def model_digest(path: Path) -> str:
    """The weights and metadata of a ``.keras`` file, without its zip timestamps
    or the run's wall-clock fields."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as z:
        for name in sorted(z.namelist()):
            data = z.read(name)
            if name.endswith(".json"):
                data = json.dumps(_drop_clock(json.loads(data)), sort_keys=True).encode()
            h.update(name.encode() + b"\0" + data)
    return h.hexdigest()


#: Fields that differ between two identical runs: wall-clock times, and the ids
#: that Keras derives from object addresses.
_CLOCK_KEYS = {
    "train_seconds",
    "created",
    "date",
    "date_saved",
    "seconds",
    "trained_at",
    "shared_object_id",
}


def _drop_clock(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_clock(v) for k, v in value.items() if k not in _CLOCK_KEYS}
    if isinstance(value, list):
        return [_drop_clock(v) for v in value]
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.dumps(_drop_clock(json.loads(value)), sort_keys=True)
        except ValueError:
            return value
    return value


def csv_digest(path: Path) -> str:
    """``log.csv`` without its ``seconds`` column."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    drop = {i for i, name in enumerate(rows[0]) if name in _CLOCK_KEYS} if rows else set()
    kept = "\n".join(",".join(c for i, c in enumerate(row) if i not in drop) for row in rows)
    return hashlib.sha256(kept.encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(out: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    special: dict[str, Callable[[Path], str]] = {".keras": model_digest}
    for path in sorted(out.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(out))
        if rel.startswith("run/"):
            if rel == "run/log.csv":
                found[rel] = csv_digest(path)
            continue  # checkpoints, curves and state carry timestamps; the model covers them
        found[rel] = special.get(path.suffix, file_digest)(path)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout to test (default .)")
    parser.add_argument("--skip-train", action="store_true", help="leave out the short train")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="roadseg-compare-"))
    before = work / "before_code"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before],
        check=True,
    )
    log = work / "log.txt"
    try:
        inputs = make_inputs(before, work, log=log)
        # The synthetic generator is compared too: the after side writes the same scenes.
        again = work / "after_inputs"
        again.mkdir()
        make_scenes(args.after.resolve(), again, log=log)
        side(before, work / "before", inputs, train=not args.skip_train, log=log)
        side(args.after.resolve(), work / "after", inputs, train=not args.skip_train, log=log)

        rows: list[tuple[str, str]] = []
        a_in, b_in = digests(work / "inputs"), digests(again)
        for name in sorted(set(a_in) | set(b_in)):
            rows.append((f"synthetic/{name}", _verdict(a_in.get(name), b_in.get(name))))
        a, b = digests(work / "before"), digests(work / "after")
        for name in sorted(set(a) | set(b)):
            rows.append((name, _verdict(a.get(name), b.get(name))))
        width = max(len(n) for n, _ in rows)
        print(f"{'output':<{width}}  result   (before {args.before} / after {args.after})")
        for name, verdict in rows:
            print(f"{name:<{width}}  {verdict}")
        differ = sum(v != "same" for _, v in rows)
        print(f"\n{len(rows) - differ} same, {differ} different")
        return 1 if differ else 0
    finally:
        if args.keep:
            shutil.copytree(
                work, args.keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("before_code")
            )
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False
        )
        shutil.rmtree(work, ignore_errors=True)


def _verdict(a: str | None, b: str | None) -> str:
    if a is None or b is None:
        return "MISSING (before)" if a is None else "MISSING (after)"
    return "same" if a == b else "DIFFERENT"


if __name__ == "__main__":
    raise SystemExit(main())
