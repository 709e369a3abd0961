"""Writing road networks as GeoPackage or GeoJSON, and reading vector ground truth.

No OGR bindings are needed: a GeoPackage is a documented SQLite schema (OGC
12-128r18): the tables ``gpkg_spatial_ref_sys``, ``gpkg_contents`` and
``gpkg_geometry_columns``, and a feature table whose geometries are a small
header followed by ordinary WKB. :mod:`sqlite3` and shapely's WKB are enough, so
roadseg keeps its dependencies small. Metadata goes in the metadata extension
(``gpkg_metadata``) in the XML form GDAL reads, so ``ogrinfo`` and QGIS show it
as layer metadata. No spatial index (R-tree) is written; GDAL and QGIS read the
file without one.

GeoJSON follows RFC 7946: WGS84 longitude/latitude (reprojected with
:func:`rasterio.warp.transform_geom`), no ``crs`` member.

Every writer goes through :func:`roadseg.raster_io.atomic_output`, so a file
appears whole or not at all.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sqlite3
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import shapely
from shapely.geometry import LineString, MultiLineString, mapping, shape
from shapely.geometry.base import BaseGeometry

from roadseg.errors import VectorError
from roadseg.raster_io import atomic_output, check_output

__all__ = [
    "VectorLines",
    "output_format",
    "write_lines",
    "write_gpkg",
    "write_geojson",
    "read_features",
    "read_lines",
    "reproject_lines",
]

VectorFormat = Literal["gpkg", "geojson"]

_SCALARS = (bool, int, float, str, np.integer, np.floating, np.bool_)

#: 'GPKG' as the SQLite application id; user_version 10200 = GeoPackage 1.2 (the
#: schema written here is 1.2; GDAL before 3.8 warns about newer versions).
_GPKG_APPLICATION_ID = 0x47504B47
_GPKG_USER_VERSION = 10200
#: GeoPackage's range for SRS ids that are not EPSG codes.
_CUSTOM_SRS_ID = 100000
#: Decimal places of GeoJSON longitudes/latitudes: 1e-8 degrees is about 1 mm.
_GEOJSON_DECIMALS = 8

_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)


@dataclass(frozen=True)
class VectorLines:
    """Line geometries read from a vector file, in the file's CRS (None: unknown)."""

    lines: tuple[LineString, ...]
    crs: Any
    layer: str


@dataclass(frozen=True)
class VectorFeatures:
    """Every feature of one layer: geometries (any type, None when empty) and their
    attributes, in the file's CRS (None: unknown).

    Attributes:
        geoms: one geometry (or None) per feature.
        properties: one attribute dict per feature.
        crs: the layer's CRS, or None when the file names none.
        layer: the layer's name.
        layers: every feature layer of the file.
    """

    geoms: tuple[BaseGeometry | None, ...]
    properties: tuple[dict[str, Any], ...]
    crs: Any
    layer: str
    layers: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The attribute names found, in order of appearance."""
        seen: dict[str, None] = {}
        for props in self.properties:
            seen.update(dict.fromkeys(props))
        return tuple(seen)


def output_format(path: str | os.PathLike[str]) -> VectorFormat:
    """The vector format an output path asks for, from its extension.

    Raises:
        VectorError: an extension other than .gpkg, .geojson or .json.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".gpkg":
        return "gpkg"
    if suffix in (".geojson", ".json"):
        return "geojson"
    raise VectorError(
        f"{Path(path).name}: cannot tell the vector format from '{suffix or 'no extension'}'; "
        "use .gpkg (GeoPackage, in the raster's CRS) or .geojson (WGS84 longitude/latitude)"
    )


def write_lines(
    path: str | os.PathLike[str],
    lines: Sequence[LineString],
    properties: Mapping[str, Sequence[Any]],
    crs: Any,
    *,
    layer: str = "roads",
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write LineStrings and their attributes; the format follows the extension.

    Args:
        path: ``.gpkg`` or ``.geojson``/``.json`` file.
        lines: geometries in ``crs``.
        properties: attribute columns, each as long as ``lines`` (float, int,
            str or None values).
        crs: a rasterio CRS (or anything it accepts), or None.
        layer: layer (table) name.
        metadata: key/value metadata stored with the layer.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        VectorError: unknown extension, GeoJSON without a CRS, or columns whose
            lengths differ from the number of lines.
        OutputError: the file exists (without ``overwrite``) or its folder is missing.
    """
    fmt = output_format(path)
    path = check_output(path, overwrite=overwrite)
    for name, column in properties.items():
        if len(column) != len(lines):
            raise VectorError(f"attribute {name} has {len(column)} values for {len(lines)} lines")
        bad = next((v for v in column if v is not None and not isinstance(v, _SCALARS)), None)
        if bad is not None:
            raise VectorError(
                f"attribute {name} holds a {type(bad).__name__}; attributes are numbers or text"
            )
    if fmt == "gpkg":
        write_gpkg(path, lines, properties, crs, layer=layer, metadata=metadata)
    else:
        write_geojson(path, lines, properties, crs, layer=layer, metadata=metadata)
    return path


# --------------------------------------------------------------------------------------
# GeoPackage
# --------------------------------------------------------------------------------------


def _crs_obj(crs: Any) -> Any:
    if crs is None:
        return None
    from rasterio.crs import CRS

    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


def _srs_row(crs: Any) -> tuple[str, int, str, int, str, str]:
    """(srs_name, srs_id, organization, organization_coordsys_id, definition, description)."""
    if crs is None:
        return ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian")
    wkt = crs.to_wkt()
    name = wkt.split('"')[1] if '"' in wkt else "unnamed"
    epsg = None
    try:
        epsg = crs.to_epsg()
    except Exception:  # pragma: no cover - GDAL-version dependent
        epsg = None
    if epsg:
        return (name, int(epsg), "EPSG", int(epsg), wkt, name)
    return (name, _CUSTOM_SRS_ID, "NONE", _CUSTOM_SRS_ID, wkt, name)


def _gpkg_blob(geom: BaseGeometry, srs_id: int) -> bytes:
    """A GeoPackage geometry: 'GP', version 0, flags, srs id, xy envelope, WKB."""
    if geom.is_empty:
        flags = 0b0001_0001  # little-endian, no envelope, empty
        return b"GP" + bytes([0, flags]) + struct.pack("<i", srs_id) + shapely.to_wkb(geom)
    minx, miny, maxx, maxy = geom.bounds
    flags = 0b0000_0011  # little-endian, envelope [minx, maxx, miny, maxy]
    header = b"GP" + bytes([0, flags]) + struct.pack("<i4d", srs_id, minx, maxx, miny, maxy)
    return header + shapely.to_wkb(geom, byte_order=1, output_dimension=2, flavor="iso")


def _parse_gpkg_blob(blob: bytes) -> BaseGeometry | None:
    if blob is None:
        return None
    blob = bytes(blob)
    if blob[:2] != b"GP":
        raise VectorError("a geometry in the GeoPackage lacks the 'GP' header")
    flags = blob[3]
    if flags & 0b0010_0000:
        raise VectorError("extended GeoPackage geometries are not supported")
    envelope = (flags >> 1) & 0b111
    size = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(envelope)
    if size is None:
        raise VectorError(f"invalid GeoPackage envelope code {envelope}")
    return shapely.from_wkb(blob[8 + size :])


def _column_type(values: Sequence[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int, bool, np.int64, np.int32}:
        return "INTEGER"
    if kinds and kinds <= {int, float, np.float64, np.float32, np.int64, np.int32}:
        return "REAL"
    return "TEXT" if kinds else "REAL"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _gdal_metadata_xml(metadata: Mapping[str, str]) -> str:
    items = "".join(
        f"<MDI key={quoteattr(str(k))}>{escape(str(v))}</MDI>" for k, v in metadata.items()
    )
    return f"<GDALMultiDomainMetadata><Metadata>{items}</Metadata></GDALMultiDomainMetadata>"


def write_gpkg(
    path: str | os.PathLike[str],
    lines: Sequence[LineString],
    properties: Mapping[str, Sequence[Any]],
    crs: Any,
    *,
    layer: str = "roads",
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a GeoPackage with one LINESTRING layer (atomically; no checks on ``path``)."""
    crs = _crs_obj(crs)
    srs = _srs_row(crs)
    srs_id = srs[1]
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    bounds = shapely.total_bounds(np.asarray(lines, dtype=object)) if len(lines) else None
    with atomic_output(path) as tmp:
        con = sqlite3.connect(tmp)
        try:
            con.execute(f"PRAGMA application_id = {_GPKG_APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
            con.execute("PRAGMA journal_mode = MEMORY")
            con.executescript(_GPKG_SCHEMA)
            base = [
                ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian"),
                ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic"),
                ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude WGS84"),
            ]
            if srs_id not in (-1, 0, 4326):
                base.append(srs)
            con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", base)
            cols = list(properties)
            col_sql = "".join(f", {_quote(c)} {_column_type(properties[c])}" for c in cols)
            con.execute(
                f"CREATE TABLE {_quote(layer)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                f"geom LINESTRING{col_sql})"
            )
            ok_bounds = bounds is not None and all(math.isfinite(b) for b in bounds)
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change, min_x, min_y, max_x, max_y, srs_id) "
                "VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    layer,
                    layer,
                    "road centerlines from roadseg vectorize",
                    now,
                    *(bounds if ok_bounds and bounds is not None else (None, None, None, None)),
                    srs_id,
                ),
            )
            con.execute(
                "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'LINESTRING', ?, 0, 0)",
                (layer, srs_id),
            )
            placeholders = ", ".join("?" for _ in range(len(cols) + 1))
            names = ", ".join(["geom", *(_quote(c) for c in cols)])
            rows = (
                (_gpkg_blob(line, srs_id), *(_sql_value(properties[c][i]) for c in cols))
                for i, line in enumerate(lines)
            )
            con.executemany(f"INSERT INTO {_quote(layer)} ({names}) VALUES ({placeholders})", rows)
            if metadata:
                con.executescript(_GPKG_METADATA_SCHEMA)
                con.execute(
                    "INSERT INTO gpkg_metadata (id, md_scope, md_standard_uri, mime_type, "
                    "metadata) VALUES (1, 'dataset', 'http://gdal.org', 'text/xml', ?)",
                    (_gdal_metadata_xml(metadata),),
                )
                con.execute(
                    "INSERT INTO gpkg_metadata_reference (reference_scope, table_name, "
                    "timestamp, md_file_id) VALUES ('table', ?, ?, 1)",
                    (layer, now),
                )
            con.commit()
        finally:
            con.close()


def _sql_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.integer, bool)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


_GPKG_SCHEMA = """
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
"""

_GPKG_METADATA_SCHEMA = """
CREATE TABLE gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
INSERT INTO gpkg_extensions VALUES ('gpkg_metadata', NULL, 'gpkg_metadata',
  'http://www.geopackage.org/spec/#extension_metadata', 'read-write');
INSERT INTO gpkg_extensions VALUES ('gpkg_metadata_reference', NULL, 'gpkg_metadata',
  'http://www.geopackage.org/spec/#extension_metadata', 'read-write');
CREATE TABLE gpkg_metadata (
  id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL,
  md_scope TEXT NOT NULL DEFAULT 'dataset', md_standard_uri TEXT NOT NULL,
  mime_type TEXT NOT NULL DEFAULT 'text/xml', metadata TEXT NOT NULL DEFAULT '');
CREATE TABLE gpkg_metadata_reference (
  reference_scope TEXT NOT NULL, table_name TEXT, column_name TEXT, row_id_value INTEGER,
  timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  md_file_id INTEGER NOT NULL, md_parent_id INTEGER,
  CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id),
  CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id));
"""


# --------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------


def _is_wgs84_lonlat(crs: Any) -> bool:
    try:
        return bool(crs.to_epsg() == 4326)
    except Exception:  # pragma: no cover
        return False


def reproject_lines(
    lines: Sequence[BaseGeometry], src_crs: Any, dst_crs: Any
) -> list[BaseGeometry]:
    """Geometries sent from ``src_crs`` to ``dst_crs`` (x = longitude for EPSG:4326).

    Raises:
        VectorError: either CRS is missing, or GDAL cannot transform between them.
    """
    from rasterio.warp import transform_geom

    if src_crs is None or dst_crs is None:
        raise VectorError("cannot reproject lines without a CRS")
    if not lines:
        return []
    src_crs, dst_crs = _crs_obj(src_crs), _crs_obj(dst_crs)
    if src_crs == dst_crs:
        return list(lines)
    try:
        out = transform_geom(src_crs, dst_crs, [mapping(g) for g in lines])
    except Exception as exc:
        raise VectorError(f"cannot reproject the lines: {' '.join(str(exc).split())}") from None
    return [shape(g) for g in out]


def write_geojson(
    path: str | os.PathLike[str],
    lines: Sequence[LineString],
    properties: Mapping[str, Sequence[Any]],
    crs: Any,
    *,
    layer: str = "roads",
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write an RFC 7946 FeatureCollection in WGS84 longitude/latitude (atomically).

    Raises:
        VectorError: ``crs`` is None (pixel or unknown coordinates cannot be sent
            to longitude/latitude).
    """
    crs = _crs_obj(crs)
    if crs is None:
        raise VectorError(
            "GeoJSON needs WGS84 longitude/latitude (RFC 7946), and these lines have no CRS; "
            "write a GeoPackage (.gpkg) instead"
        )
    geoms = list(lines) if _is_wgs84_lonlat(crs) else reproject_lines(lines, crs, "EPSG:4326")
    features = []
    for i, geom in enumerate(geoms):
        coords = np.round(np.asarray(geom.coords, float)[:, :2], _GEOJSON_DECIMALS)
        features.append(
            {
                "type": "Feature",
                "id": i + 1,
                "properties": {k: _json_value(v[i]) for k, v in properties.items()},
                "geometry": {"type": "LineString", "coordinates": coords.tolist()},
            }
        )
    doc: dict[str, Any] = {"type": "FeatureCollection", "name": layer}
    if metadata:
        doc["roadseg"] = dict(metadata)  # a foreign member (RFC 7946, section 6.1)
    doc["features"] = features
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, allow_nan=False, separators=(",", ":"))
            fh.write("\n")


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def read_features(
    path: str | os.PathLike[str], layer: str | None = None, *, one_layer: bool = False
) -> VectorFeatures:
    """Read every feature of a GeoJSON or GeoPackage layer, with its attributes
    (any other format GDAL reads, such as Shapefile or FlatGeobuf, through the
    optional pyogrio).

    GeoJSON without a ``crs`` member is WGS84 longitude/latitude (RFC 7946); the
    old ``crs`` member is honoured. A GeoPackage's layer is ``layer``, else its
    only (or, unless ``one_layer``, its first) feature table.

    Raises:
        VectorError: missing file, unknown format, unreadable content, unknown
            layer, or several layers with ``one_layer`` and no ``layer``.
    """
    path = Path(path)
    if not path.exists():
        raise VectorError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise VectorError(f"{path} is a folder, not a vector file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        return _read_gpkg(path, layer, one_layer)
    if path.suffix.lower() in (".geojson", ".json") or head.lstrip()[:1] == b"{":
        return _read_geojson(path)
    return _read_ogr(path, layer, one_layer)


def _read_ogr(path: Path, layer: str | None, one_layer: bool) -> VectorFeatures:
    """Any other vector format GDAL reads (Shapefile, FlatGeobuf, GML, KML, ...),
    through pyogrio (the optional ``vector`` extra, with GDAL in its wheel).

    Raises:
        VectorError: pyogrio is missing, the file is not a vector GDAL reads, or
            the layer is unknown (or not named among several with ``one_layer``).
    """
    try:
        import pyogrio
        import pyogrio.raw
    except ImportError:
        raise VectorError(
            f"{path.name} is neither GeoJSON nor GeoPackage; to read it directly, "
            'pip install "roadseg[vector]", or convert it with '
            f"ogr2ogr -f GPKG {path.with_suffix('.gpkg').name} {path.name}"
        ) from None
    try:
        layers = tuple(str(row[0]) for row in pyogrio.list_layers(path))
    except Exception:  # pyogrio raises its own DataSourceError and others
        raise VectorError(
            f"{path.name} is not a vector file GDAL can read; give a GeoPackage, GeoJSON, "
            "Shapefile, FlatGeobuf or another OGR format"
        ) from None
    if not layers:
        raise VectorError(f"{path.name} has no layer")
    if layer is None:
        if one_layer and len(layers) > 1:
            raise VectorError(
                f"{path.name} has several layers ({', '.join(layers)}); name one with --layer"
            )
        layer = layers[0]
    elif layer not in layers:
        raise VectorError(f"{path.name} has no layer {layer!r}; its layers: {', '.join(layers)}")
    try:
        meta, _, wkb, field_data = pyogrio.raw.read(path, layer=layer)
    except Exception as exc:
        raise VectorError(f"{path.name}: layer {layer!r} could not be read ({exc})") from None
    names = [str(n) for n in meta.get("fields", [])]
    geoms = tuple(
        None if g is None else shapely.from_wkb(g) for g in (wkb if wkb is not None else [])
    )
    props = tuple(
        {name: _json_value(column[i]) for name, column in zip(names, field_data, strict=True)}
        for i in range(len(geoms))
    )
    crs = _crs_obj(meta["crs"]) if meta.get("crs") else None
    return VectorFeatures(geoms, props, crs, layer, layers)


def read_lines(path: str | os.PathLike[str], layer: str | None = None) -> VectorLines:
    """Read the LineStrings of a GeoJSON or GeoPackage file (MultiLineStrings are split).

    GeoJSON without a ``crs`` member is WGS84 longitude/latitude (RFC 7946); the
    old ``crs`` member is honoured. A GeoPackage's layer is ``layer`` or its only
    (or first) feature table.

    Raises:
        VectorError: missing file, unknown format, unreadable content, unknown
            layer, or no line geometries at all.
    """
    path = Path(path)
    features = read_features(path, layer)
    geoms, crs, name = features.geoms, features.crs, features.layer
    lines: list[LineString] = []
    for geom in geoms:
        if geom is None or geom.is_empty:
            continue
        if isinstance(geom, LineString):
            lines.append(geom)
        elif isinstance(geom, MultiLineString):
            lines.extend(geom.geoms)
        elif geom.geom_type == "GeometryCollection":
            lines.extend(
                g
                for part in geom.geoms
                for g in getattr(part, "geoms", [part])
                if isinstance(g, LineString)
            )
    if geoms and not lines:
        raise VectorError(
            f"{path.name} has no LineString geometries; road ground truth is centerlines"
        )
    return VectorLines(tuple(lines), crs, name)


def _read_geojson(path: Path) -> VectorFeatures:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise VectorError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise VectorError(f"{path.name} is JSON but not GeoJSON (no 'type')")
    if doc["type"] == "FeatureCollection":
        feats = [f for f in doc.get("features", []) if isinstance(f, dict)]
    elif doc["type"] == "Feature":
        feats = [doc]
    else:
        feats = [{"geometry": doc}]
    items = [f.get("geometry") for f in feats]
    props = tuple(dict(f.get("properties") or {}) for f in feats)
    try:
        geoms = [shape(g) if g else None for g in items]
    except Exception as exc:
        raise VectorError(f"{path.name} holds an invalid geometry ({exc})") from None
    crs: Any = _crs_obj("EPSG:4326")
    named = doc.get("crs", {}) if isinstance(doc.get("crs"), dict) else {}
    name = named.get("properties", {}).get("name") if named else None
    if name and "CRS84" not in name.upper():
        try:
            crs = _crs_obj(name)
        except Exception:
            raise VectorError(f"{path.name} names an unknown CRS: {name}") from None
    name = str(doc.get("name") or path.stem)
    return VectorFeatures(tuple(geoms), props, crs, name, (name,))


def _read_gpkg(path: Path, layer: str | None, one_layer: bool = False) -> VectorFeatures:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise VectorError(f"{path.name} cannot be opened as a GeoPackage ({exc})") from None
    try:
        try:
            tables = con.execute(
                "SELECT c.table_name, g.column_name, g.srs_id FROM gpkg_contents c "
                "JOIN gpkg_geometry_columns g ON g.table_name = c.table_name "
                "WHERE c.data_type = 'features' ORDER BY c.table_name"
            ).fetchall()
        except sqlite3.Error:
            raise VectorError(f"{path.name} is an SQLite file but not a GeoPackage") from None
        if not tables:
            raise VectorError(f"{path.name} has no feature layer")
        if layer is not None:
            chosen = [t for t in tables if t[0] == layer]
            if not chosen:
                names = ", ".join(t[0] for t in tables)
                raise VectorError(f"{path.name} has no layer {layer!r}; it has: {names}")
            table, column, srs_id = chosen[0]
        elif one_layer and len(tables) > 1:
            names = ", ".join(t[0] for t in tables)
            raise VectorError(
                f"{path.name} has {len(tables)} layers ({names}); choose one with --layer NAME"
            )
        else:
            table, column, srs_id = tables[0]
        cursor = con.execute(f"SELECT * FROM {_quote(table)}")
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        srs = con.execute(
            "SELECT organization, organization_coordsys_id, definition "
            "FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
            (srs_id,),
        ).fetchone()
    finally:
        con.close()
    geom_at = columns.index(column)
    pk = {"fid", "ogc_fid"}
    geoms = [_parse_gpkg_blob(r[geom_at]) for r in rows]
    props = tuple(
        {n: v for n, v in zip(columns, r, strict=True) if n != column and n.lower() not in pk}
        for r in rows
    )
    crs = None
    if srs is not None and srs_id not in (-1, 0):
        org, code, definition = srs
        try:
            if str(org).upper() == "EPSG":
                crs = _crs_obj(f"EPSG:{int(code)}")
            else:
                crs = _crs_obj(definition)
        except Exception:
            raise VectorError(f"{path.name} has an unreadable CRS definition") from None
    return VectorFeatures(tuple(geoms), props, crs, str(table), tuple(t[0] for t in tables))
