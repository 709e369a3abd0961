"""Many rasters in one run: turn what a user typed into (input, output) jobs.

An input may be a path, a glob pattern (``tiles/*.tif``, ``**`` searches
folders below), or a text file listing one path or pattern per line (named
``@list.txt``, or any existing ``.txt`` file); blank lines and lines starting
with ``#`` are skipped, and relative lines are relative to the list's folder.
A VRT is one raster like any other: its sources are not predicted one by one.

Each input gets its own outputs, named after its stem (``{stem}_roads.tif``),
beside the input or in one output folder. Everything that would make two jobs
write the same file, or a job overwrite an input, is refused here, before any
pixel is predicted.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from roadseg.errors import InvalidRasterError, OutputError

#: Name of the probability output of ``input.tif`` (``{stem}`` is ``input``).
OUTPUT_NAME = "{stem}_roads.tif"

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Job:
    """One raster to predict and the files it writes."""

    input: Path
    output: Path
    mask: Path | None = None
    preview: Path | None = None

    @property
    def outputs(self) -> tuple[Path, ...]:
        """Every file the job writes, the probability output first."""
        return tuple(p for p in (self.output, self.mask, self.preview) if p is not None)


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob pattern or a list file rather than one path."""
    return text.startswith("@") or bool(_GLOB_CHARS & set(text))


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The rasters named by paths, glob patterns and list files, in order.

    A file named twice (also through different patterns) is kept once, where
    it first appears. Glob matches are sorted so runs are reproducible.

    Raises:
        InvalidRasterError: nothing was given, a path or list file does not
            exist, or a pattern or list matches no file.
    """
    return [path for path, _ in _expand(inputs)]


def _expand(inputs: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, bool]]:
    """:func:`expand_inputs`, with whether each file was named explicitly."""
    if not inputs:
        raise InvalidRasterError("no input given; name a raster, a glob pattern or @list.txt")
    found: list[tuple[Path, bool]] = []
    for item in inputs:
        text = os.fspath(item)
        if text.startswith("@"):
            found.extend((p, False) for p in _read_list(Path(text[1:])))
        elif text.lower().endswith(".txt") and Path(text).is_file():
            found.extend((p, False) for p in _read_list(Path(text)))
        else:
            paths = _expand_one(text, where=None)
            explicit = paths == [Path(text)]
            found.extend((p, explicit) for p in paths)
    seen: dict[Path, int] = {}
    unique: list[tuple[Path, bool]] = []
    for path, explicit in found:
        key = path.resolve()
        if key in seen:
            i = seen[key]
            unique[i] = (unique[i][0], unique[i][1] or explicit)
            continue
        seen[key] = len(unique)
        unique.append((path, explicit))
    return unique


def plan_jobs(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    output_name: str = OUTPUT_NAME,
    mask_name: str | None = None,
    preview_name: str | None = None,
) -> list[Job]:
    """Jobs for what a user typed: :func:`expand_inputs`, then :func:`make_jobs`.

    Files that a pattern or list matched and that are named like the output of
    another matched input (``a_roads.tif`` beside ``a.tif``) are left out:
    ``roadseg predict 'tiles/*.tif'`` run a second time matches the outputs of
    its first run too, and they are results, not imagery. A file named
    explicitly is never left out.

    Raises:
        InvalidRasterError, OutputError: see :func:`expand_inputs` and
            :func:`make_jobs`.
    """
    found = _expand(inputs)
    paths = [p for p, _ in found]
    results: set[Path] = set()
    for src in paths:
        name = _name(output_name, src.stem, "output")
        results.add(_key(src.parent / name))
        if output_dir is not None:
            results.add(_key(Path(output_dir) / name))
    kept = [p for p, explicit in found if explicit or _key(p) not in results]
    if not kept:
        raise InvalidRasterError(
            "the inputs match only roadseg outputs; name the imagery to predict"
        )
    return make_jobs(
        kept,
        output_dir=output_dir,
        output_name=output_name,
        mask_name=mask_name,
        preview_name=preview_name,
    )


def _expand_one(text: str, where: Path | None) -> list[Path]:
    """One path or glob pattern; ``where`` names the list file it came from."""
    origin = f" (listed in {where})" if where is not None else ""
    path = Path(text)
    if path.exists() or not (_GLOB_CHARS & set(text)):
        if not path.exists():
            raise InvalidRasterError(f"{path}{origin} does not exist; check the path")
        if path.is_dir():
            raise InvalidRasterError(
                f"{path}{origin} is a folder; give its rasters as a pattern, e.g. '{path}/*.tif'"
            )
        return [path]
    matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
    files = [m for m in matches if m.is_file()]
    if not files:
        raise InvalidRasterError(
            f"the pattern {text}{origin} matches no file; check it, and quote it so the "
            "shell does not expand it"
        )
    return files


def _read_list(path: Path) -> list[Path]:
    """The rasters named in a list file, one path or pattern per line."""
    if not path.is_file():
        raise InvalidRasterError(f"list file {path} does not exist; check the path after @")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRasterError(
            f"list file {path} cannot be read as text ({exc}); give one path per line"
        ) from None
    found: list[Path] = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not Path(entry).is_absolute():
            entry = str(path.parent / entry)
        found.extend(_expand_one(entry, where=path))
    if not found:
        raise InvalidRasterError(f"list file {path} names no raster; give one path per line")
    return found


def _name(template: str, stem: str, what: str) -> str:
    try:
        return template.format(stem=stem)
    except (KeyError, IndexError, ValueError) as exc:
        raise OutputError(
            f"the {what} name {template!r} is not a valid pattern ({exc}); "
            "use {stem} for the input's name, e.g. '{stem}_roads.tif'"
        ) from None


def make_jobs(
    inputs: Iterable[Path],
    *,
    output_dir: str | os.PathLike[str] | None = None,
    output_name: str = OUTPUT_NAME,
    mask_name: str | None = None,
    preview_name: str | None = None,
) -> list[Job]:
    """One job per input, with its output paths.

    Args:
        inputs: rasters, e.g. from :func:`expand_inputs`.
        output_dir: folder for every output; None writes each beside its input.
        output_name: output file name; ``{stem}`` is the input's name without
            its extension.
        mask_name, preview_name: names of the optional mask and preview, as
            ``output_name``; None writes none.

    Raises:
        OutputError: a name pattern is invalid, two jobs would write the same
            file, or an output would replace an input.
    """
    inputs = list(inputs)
    folder = Path(output_dir) if output_dir is not None else None
    jobs: list[Job] = []
    for src in inputs:
        where = folder if folder is not None else src.parent

        named = {
            what: where / _name(template, src.stem, what)
            for what, template in (
                ("output", output_name),
                ("mask", mask_name),
                ("preview", preview_name),
            )
            if template is not None
        }
        jobs.append(
            Job(
                input=src,
                output=named["output"],
                mask=named.get("mask"),
                preview=named.get("preview"),
            )
        )
    _check_jobs(jobs)
    return jobs


def _check_jobs(jobs: list[Job]) -> None:
    """Refuse jobs that would write one file twice or write over an input.

    Raises:
        OutputError: see :func:`make_jobs`.
    """
    inputs = {_key(job.input): job.input for job in jobs}
    writers: dict[Path, Job] = {}
    for job in jobs:
        for out in job.outputs:
            key = _key(out)
            if key == _key(job.input):
                raise OutputError(
                    f"the output {out} of {job.input} is the input itself; "
                    "choose another --output-dir or output name"
                )
            if key in inputs:
                raise OutputError(
                    f"the output {out} of {job.input} is also an input; "
                    "exclude it from the inputs or write to an --output-dir"
                )
            other = writers.get(key)
            if other is not None:
                raise OutputError(
                    f"{other.input} and {job.input} would both write {out}; rename one, "
                    "or run them into different --output-dir folders"
                )
            writers[key] = job


def _key(path: Path) -> Path:
    """A path's identity for comparisons (outputs need not exist yet)."""
    return Path(os.path.normcase(os.path.abspath(path)))
