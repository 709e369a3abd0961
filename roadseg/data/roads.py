"""Road layers as training labels: reading a road layer (lines or road-surface
polygons) with its attributes, giving each line a width in metres, and the
OpenStreetMap ``highway`` width table.

A line's width comes from, in this order: one width for every road
(:attr:`WidthRule.width_m`), a numeric attribute (:attr:`WidthRule.field`), or the
``highway`` tag through :data:`HIGHWAY_WIDTHS_M` (overridable by a small JSON or
CSV file, :func:`load_width_table`). Tags the table turns off (width 0: paths,
footways, cycleways, steps) are not drawn. Polygons are burned as they are.

Problems that stop training (an empty layer, no CRS, points instead of lines, a
width field that is missing or not numeric) are collected in
:attr:`RoadLayer.problems`, one line each that says what to do, so ``--check``
can list them all.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadseg.data.types import DEFAULT_ROAD_WIDTH_M
from roadseg.errors import DatasetError, VectorError

#: Width in metres of the road band drawn for each OpenStreetMap ``highway`` tag
#: (carriageway plus shoulders, as seen from above). 0 turns a tag off.
HIGHWAY_WIDTHS_M: dict[str, float] = {
    "motorway": 20.0,
    "motorway_link": 8.0,
    "trunk": 16.0,
    "trunk_link": 8.0,
    "primary": 12.0,
    "primary_link": 7.0,
    "secondary": 10.0,
    "secondary_link": 6.0,
    "tertiary": 8.0,
    "tertiary_link": 6.0,
    "unclassified": 6.0,
    "residential": 8.0,
    "living_street": 6.0,
    "road": 6.0,
    "busway": 6.0,
    "service": 4.0,
    "track": 3.0,
    "pedestrian": 0.0,
    "path": 0.0,
    "footway": 0.0,
    "cycleway": 0.0,
    "bridleway": 0.0,
    "steps": 0.0,
    "corridor": 0.0,
    "construction": 0.0,
    "proposed": 0.0,
}
#: The attribute holding OpenStreetMap's road class.
HIGHWAY_FIELD = "highway"


@dataclass(frozen=True)
class WidthRule:
    """How lines get their width in metres.

    Attributes:
        width_m: one width for every line (wins over the rest).
        field: a numeric attribute holding each line's width.
        table: ``highway`` tag -> width (0: not drawn); used when the layer has a
            ``highway`` attribute and neither ``width_m`` nor ``field`` is given.
        fallback_m: width of lines the rules above say nothing about.
    """

    width_m: float | None = None
    field: str | None = None
    table: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(HIGHWAY_WIDTHS_M))
    fallback_m: float = DEFAULT_ROAD_WIDTH_M

    def __post_init__(self) -> None:
        if self.width_m is not None and not self.width_m > 0:
            raise ValueError(f"road width must be positive, got {self.width_m} m")
        if not self.fallback_m > 0:
            raise ValueError(f"fallback road width must be positive, got {self.fallback_m} m")

    @classmethod
    def from_options(
        cls,
        *,
        width_m: float | None = None,
        field: str | None = None,
        table: str | os.PathLike[str] | None = None,
        fallback_m: float = DEFAULT_ROAD_WIDTH_M,
    ) -> WidthRule:
        """The rule of the command-line options (``--road-width-m`` when given,
        ``--width-field``, ``--width-table`` over :data:`HIGHWAY_WIDTHS_M`), as
        ``roadseg train`` and ``roadseg evaluate`` both read them.

        Raises:
            DatasetError: the width table cannot be read (see :func:`load_width_table`).
        """
        return cls(
            width_m=width_m, field=field, table=load_width_table(table), fallback_m=fallback_m
        )


@dataclass(frozen=True)
class RoadLayer:
    """A road layer ready to burn: lines and polygons with widths, in ``crs``.

    Attributes:
        path: the vector file.
        layer: its layer's name.
        crs: the layer's CRS (None: unknown, a problem).
        geoms: lines and polygons (points and empty geometries left out).
        widths: full width in metres of each line's band (polygons: 0, burned as they are).
        classes: what each geometry counts under in reports: its ``highway`` tag,
            ``"N m"`` or ``"surface"`` for polygons.
        source: how widths were chosen, for reports.
        notes: things to know that do not stop training.
        problems: things that stop training, one line each.
    """

    path: Path
    layer: str
    crs: Any
    geoms: tuple[Any, ...]
    widths: tuple[float, ...]
    classes: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def drawn(self) -> list[int]:
        """Indices of the geometries that are drawn (polygons, lines wider than 0)."""
        return [
            i
            for i, (g, w) in enumerate(zip(self.geoms, self.widths, strict=True))
            if w > 0 or g.geom_type in ("Polygon", "MultiPolygon")
        ]


def load_width_table(path: str | os.PathLike[str] | None) -> dict[str, float]:
    """The ``highway`` width table: :data:`HIGHWAY_WIDTHS_M` with a file's entries over it.

    The file is JSON (``{"motorway": 24, "footway": 2}``) or CSV with two columns
    (``highway,width_m``; a header line is allowed). A width of 0, ``off`` or
    empty turns a tag off.

    Raises:
        DatasetError: the file is missing, or a width is not a number >= 0.
    """
    table = dict(HIGHWAY_WIDTHS_M)
    if path is None:
        return table
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"--width-table {path} does not exist; give a JSON or CSV file")
    text = path.read_text(encoding="utf-8")
    entries: list[tuple[str, Any]]
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"--width-table {path.name} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DatasetError(
                f'--width-table {path.name} must map tags to widths, e.g. {{"motorway": 24}}'
            )
        entries = list(data.items())
    else:
        rows = [r for r in csv.reader(text.splitlines()) if r and r[0].strip()]
        if rows and not _is_width(rows[0][1] if len(rows[0]) > 1 else ""):
            rows = rows[1:]  # a header line
        entries = [(r[0], r[1] if len(r) > 1 else "") for r in rows]
    for tag, value in entries:
        if not _is_width(value):
            raise DatasetError(
                f"--width-table {path.name}: the width of {tag!r} is {value!r}; "
                "give metres (a number >= 0, 0 or off to leave the tag out)"
            )
        table[str(tag).strip()] = _width_value(value)
    return table


def _is_width(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return True
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and number >= 0


def _width_value(value: Any) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off")):
        return 0.0
    return float(value)


def _number(value: Any) -> float | None:
    """A width attribute as metres, or None when it is not a positive number
    (OpenStreetMap's ``width`` may read ``"7 m"`` or ``"7;5"``: the first number counts)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value > 0 else None
    text = str(value).strip().split(";")[0].removesuffix("m").strip().replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _width_class(width: float) -> str:
    return f"{width:g} m"


def read_road_layer(
    path: str | os.PathLike[str], *, layer: str | None = None, rule: WidthRule | None = None
) -> RoadLayer:
    """Read a road layer and give every line its width.

    Args:
        path: GeoJSON or GeoPackage file.
        layer: the layer, when the file has several.
        rule: how widths are chosen (default: ``highway`` table, else 4 m).

    Returns:
        The layer; its ``problems`` say why it cannot be trained on.

    Raises:
        DatasetError: the file cannot be read at all (missing, unknown format,
            several layers without ``layer``).
    """
    from roadseg.vector_io import read_features

    rule = rule or WidthRule()
    path = Path(path)
    try:
        feats = read_features(path, layer, one_layer=True)
    except VectorError as exc:
        raise DatasetError(str(exc)) from None
    name = path.name
    problems: list[str] = []
    notes: list[str] = []
    kinds: Counter[str] = Counter()
    kept: list[tuple[Any, dict[str, Any]]] = []
    for geom, props in zip(feats.geoms, feats.properties, strict=True):
        if geom is None or geom.is_empty:
            continue
        kind = _kind(geom)
        kinds[kind] += 1
        if kind in ("line", "polygon"):
            kept.append((geom, props))
    if not kinds:
        problems.append(
            f"{name} (layer {feats.layer}) has no features; export the roads of your area "
            "into it (or give the right layer with --layer NAME)"
        )
    elif not kept:
        what = ", ".join(f"{n} {k}s" for k, n in kinds.items())
        problems.append(
            f"{name} holds {what}, no lines or polygons; roads need centerlines "
            "(LineString) or road surfaces (Polygon), not points"
        )
    elif kinds["point"] or kinds["other"]:
        notes.append(f"{kinds['point'] + kinds['other']} point feature(s) of {name} are ignored")
    if feats.crs is None:
        problems.append(
            f"{name} has no CRS, so its lines cannot be placed on the rasters; set it with "
            f"ogr2ogr -a_srs EPSG:XXXX fixed.gpkg {name}"
        )
    widths, classes, source = _widths(kept, feats.fields, rule, name, problems, notes)
    return RoadLayer(
        path=path,
        layer=feats.layer,
        crs=feats.crs,
        geoms=tuple(g for g, _ in kept),
        widths=tuple(widths),
        classes=tuple(classes),
        source=source,
        notes=tuple(notes),
        problems=tuple(problems),
    )


def _kind(geom: Any) -> str:
    t = geom.geom_type
    if "LineString" in t:
        return "line"
    if "Polygon" in t:
        return "polygon"
    if "Point" in t:
        return "point"
    return "other"


def _widths(
    kept: Sequence[tuple[Any, Mapping[str, Any]]],
    fields: Sequence[str],
    rule: WidthRule,
    name: str,
    problems: list[str],
    notes: list[str],
) -> tuple[list[float], list[str], str]:
    """Each kept geometry's width and report class, and how widths were chosen."""
    polygon = [_kind(g) == "polygon" for g, _ in kept]
    if rule.width_m is not None:
        w = rule.width_m
        return (
            [0.0 if p else w for p in polygon],
            ["surface" if p else _width_class(w) for p in polygon],
            f"lines {w:g} m wide",
        )
    if rule.field is not None:
        return _widths_from_field(kept, polygon, fields, rule.field, name, problems)
    if HIGHWAY_FIELD in fields:
        return _widths_from_table(kept, polygon, rule, notes)
    w = rule.fallback_m
    if not all(polygon):
        notes.append(
            f"{name} has no '{HIGHWAY_FIELD}' attribute; its lines are drawn {w:g} m wide "
            "(set --road-width-m M or --width-field FIELD)"
        )
    return (
        [0.0 if p else w for p in polygon],
        ["surface" if p else _width_class(w) for p in polygon],
        f"lines {w:g} m wide",
    )


def _widths_from_field(
    kept: Sequence[tuple[Any, Mapping[str, Any]]],
    polygon: Sequence[bool],
    fields: Sequence[str],
    width_field: str,
    name: str,
    problems: list[str],
) -> tuple[list[float], list[str], str]:
    source = f"lines as wide as their '{width_field}' attribute"
    if width_field not in fields:
        shown = ", ".join(fields[:12]) or "none"
        problems.append(
            f"{name} has no attribute '{width_field}' (its attributes: {shown}); "
            "give --width-field with one of them, or --road-width-m M for one width"
        )
        return [0.0] * len(kept), ["?"] * len(kept), source
    widths, classes, bad = [], [], []
    for (_, props), p in zip(kept, polygon, strict=True):
        if p:
            widths.append(0.0)
            classes.append("surface")
            continue
        value = _number(props.get(width_field))
        if value is None:
            bad.append(props.get(width_field))
            value = 0.0
        widths.append(value)
        classes.append(_width_class(value))
    if bad:
        problems.append(
            f"'{width_field}' of {name} is not a positive number in {len(bad)} of "
            f"{len(widths)} features (e.g. {bad[0]!r}); fix those values, or use "
            "--road-width-m M for one width"
        )
    return widths, classes, source


def _widths_from_table(
    kept: Sequence[tuple[Any, Mapping[str, Any]]],
    polygon: Sequence[bool],
    rule: WidthRule,
    notes: list[str],
) -> tuple[list[float], list[str], str]:
    widths, classes = [], []
    unknown: Counter[str] = Counter()
    off: Counter[str] = Counter()
    for (_, props), p in zip(kept, polygon, strict=True):
        if p:
            widths.append(0.0)
            classes.append("surface")
            continue
        tag = str(props.get(HIGHWAY_FIELD) or "").strip() or "(no tag)"
        width = rule.table.get(tag)
        if width is None:
            unknown[tag] += 1
            width = rule.fallback_m
        elif width <= 0:
            off[tag] += 1
        widths.append(width)
        classes.append(tag)
    if unknown:
        shown = ", ".join(f"{t} ({n})" for t, n in unknown.most_common(6))
        notes.append(
            f"highway tags not in the width table are drawn {rule.fallback_m:g} m wide: {shown}; "
            "add them to a --width-table file"
        )
    if off:
        shown = ", ".join(f"{t} ({n})" for t, n in off.most_common(6))
        notes.append(f"not drawn (off in the width table): {shown}")
    return widths, classes, f"lines as wide as their '{HIGHWAY_FIELD}' tag says (width table)"
