"""Tests for roadseg.vector_io (GeoPackage, GeoJSON) and roadseg.vector_metrics."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import CUSTOM_WKT, shared
from rasterio.crs import CRS
from shapely.geometry import LineString, Point

from roadseg.errors import OutputError, VectorError
from roadseg.vector_io import output_format, read_lines, write_lines
from roadseg.vector_metrics import (
    apls,
    centerline_metrics,
    evaluate_centerlines,
    find_junctions,
    junction_metrics,
)
from roadseg.vectorize import VectorizeOptions, vectorize_raster

OGRINFO = shutil.which("ogrinfo")

LINES = [
    LineString([(500000.0, 5500000.0), (500100.0, 5500000.0)]),
    LineString([(500050.0, 5500000.0), (500050.0, 5499900.0), (500080.0, 5499850.0)]),
]
PROPS = {"length_m": [100.0, 158.3], "width_m": [6.0, None], "start_node": [0, 1]}


def _ogrinfo(path: Path) -> str:
    assert OGRINFO is not None
    proc = subprocess.run(
        [OGRINFO, "-ro", "-al", "-so", str(path)], capture_output=True, text=True, check=True
    )
    return proc.stdout


# --------------------------------------------------------------------------------------
# GeoPackage
# --------------------------------------------------------------------------------------


def test_gpkg_round_trip(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "roads.gpkg", LINES, PROPS, "EPSG:32633", metadata={"A": "1"})
    back = read_lines(path)
    assert back.crs == CRS.from_epsg(32633)
    assert back.layer == "roads"
    assert [g.equals_exact(h, 0) for g, h in zip(back.lines, LINES, strict=True)] == [True, True]
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        rows = con.execute(
            "SELECT length_m, width_m, start_node FROM roads ORDER BY fid"
        ).fetchall()
        assert rows == [(100.0, 6.0, 0), (158.3, None, 1)]
        contents = con.execute(
            "SELECT data_type, srs_id, min_x, max_y FROM gpkg_contents"
        ).fetchone()
        assert contents == ("features", 32633, 500000.0, 5500000.0)
        (md,) = con.execute("SELECT metadata FROM gpkg_metadata").fetchone()
        assert '<MDI key="A">1</MDI>' in md
    finally:
        con.close()


@pytest.mark.skipif(OGRINFO is None, reason="ogrinfo (gdal-bin) not installed")
def test_gpkg_opens_in_ogr_with_its_crs_and_metadata(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "roads.gpkg", LINES, PROPS, "EPSG:32633", metadata={"K": "v"})
    info = _ogrinfo(path)
    assert "Geometry: Line String" in info
    assert "Feature Count: 2" in info
    assert 'ID["EPSG",32633]' in info
    assert "K=v" in info
    assert "width_m: Real" in info and "start_node: Integer" in info


@pytest.mark.skipif(OGRINFO is None, reason="ogrinfo (gdal-bin) not installed")
def test_gpkg_with_a_custom_crs_and_without_one(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "custom.gpkg", LINES, PROPS, CUSTOM_WKT)
    assert "Albers" in _ogrinfo(path)
    assert read_lines(path).crs == CRS.from_wkt(CUSTOM_WKT)
    path = write_lines(tmp_path / "none.gpkg", LINES, PROPS, None)
    assert "Feature Count: 2" in _ogrinfo(path)
    assert read_lines(path).crs is None


def test_empty_layer_is_valid(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "empty.gpkg", [], {"length_m": []}, "EPSG:32633")
    back = read_lines(path)
    assert back.lines == () and back.crs == CRS.from_epsg(32633)
    if OGRINFO:
        assert "Feature Count: 0" in _ogrinfo(path)


def test_outputs_are_refused_or_replaced_whole(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "roads.gpkg", LINES, PROPS, "EPSG:32633")
    with pytest.raises(OutputError, match="already exists"):
        write_lines(path, LINES, PROPS, "EPSG:32633")
    write_lines(path, LINES[:1], {"length_m": [1.0]}, "EPSG:32633", overwrite=True)
    assert len(read_lines(path).lines) == 1
    with pytest.raises(OutputError, match="does not exist"):
        write_lines(tmp_path / "no" / "roads.gpkg", LINES, PROPS, "EPSG:32633")
    # A failure half way leaves neither the file nor a temporary behind.
    with pytest.raises(VectorError, match="holds a object"):
        write_lines(tmp_path / "bad.gpkg", LINES, {"x": [object(), object()]}, "EPSG:32633")
    # A failure while writing (here: a geometry GEOS cannot serialise) leaves nothing.
    with pytest.raises(Exception):  # noqa: B017
        write_lines(tmp_path / "bad.gpkg", [LINES[0], "not a line"], {}, "EPSG:32633")
    with pytest.raises(Exception):  # noqa: B017
        write_lines(tmp_path / "bad.geojson", [LINES[0], "not a line"], {}, "EPSG:32633")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roads.gpkg"]


def test_format_follows_the_extension() -> None:
    assert output_format("a.GPKG") == "gpkg"
    assert output_format("a.geojson") == output_format("a.json") == "geojson"
    with pytest.raises(VectorError, match=r"\.gpkg"):
        output_format("roads.shp")


# --------------------------------------------------------------------------------------
# GeoJSON
# --------------------------------------------------------------------------------------


def test_geojson_is_longitude_latitude(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "roads.geojson", LINES, PROPS, "EPSG:32633", metadata={"A": "1"})
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    coords = np.array(doc["features"][0]["geometry"]["coordinates"])
    # UTM 33N, easting 500000 is the central meridian 15 E; northing 5.5e6 is ~49.6 N.
    assert coords[0] == pytest.approx([15.0, 49.6525], abs=2e-3)
    assert np.all((coords[:, 0] > 14) & (coords[:, 0] < 16))
    assert doc["features"][1]["properties"] == {"length_m": 158.3, "width_m": None, "start_node": 1}
    back = read_lines(path)
    assert back.crs == CRS.from_epsg(4326)
    # 100 m east along the parallel, measured after going back to UTM.
    from roadseg.vector_io import reproject_lines

    (again,) = reproject_lines(back.lines[:1], back.crs, "EPSG:32633")
    assert again.length == pytest.approx(100.0, abs=0.01)


def test_geojson_refuses_lines_without_crs(tmp_path: Path) -> None:
    with pytest.raises(VectorError, match="no CRS"):
        write_lines(tmp_path / "roads.geojson", LINES, PROPS, None)
    assert not list(tmp_path.iterdir())


def test_geojson_already_in_wgs84_is_not_moved(tmp_path: Path) -> None:
    line = LineString([(-115.23, 36.14), (-115.22, 36.15)])
    path = write_lines(tmp_path / "r.geojson", [line], {}, "EPSG:4326")
    coords = json.loads(path.read_text())["features"][0]["geometry"]["coordinates"]
    assert coords == [[-115.23, 36.14], [-115.22, 36.15]]


# --------------------------------------------------------------------------------------
# Reading ground truth
# --------------------------------------------------------------------------------------


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(VectorError, match="does not exist"):
        read_lines(tmp_path / "missing.geojson")
    (tmp_path / "x.txt").write_text("hello")
    # With pyogrio: GDAL cannot read it; without: neither GeoJSON nor GeoPackage.
    with pytest.raises(VectorError, match="not a vector file GDAL can read|neither GeoJSON"):
        read_lines(tmp_path / "x.txt")
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(VectorError, match="not valid JSON"):
        read_lines(tmp_path / "bad.geojson")
    poly = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    (tmp_path / "poly.geojson").write_text(json.dumps(poly))
    with pytest.raises(VectorError, match="no LineString"):
        read_lines(tmp_path / "poly.geojson")
    sqlite3.connect(tmp_path / "plain.sqlite").execute("CREATE TABLE t (a)").connection.close()
    with pytest.raises(VectorError, match="not a GeoPackage"):
        read_lines(tmp_path / "plain.sqlite")


def test_read_multilines_and_legacy_crs(tmp_path: Path) -> None:
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "MultiLineString",
                    "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]],
                },
            }
        ],
    }
    (tmp_path / "m.geojson").write_text(json.dumps(doc))
    back = read_lines(tmp_path / "m.geojson")
    assert len(back.lines) == 2 and back.crs == CRS.from_epsg(32633)


def test_read_spacenet_ground_truth() -> None:
    back = read_lines(shared("spacenet", "sample_roads_for_masking.geojson"))
    assert len(back.lines) == 9 and back.crs == CRS.from_epsg(4326)
    assert -116 < back.lines[0].coords[0][0] < -115  # longitude first


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def test_centerline_metrics_buffer_and_quality() -> None:
    truth = [LineString([(0, 0), (100, 0)])]
    near = [LineString([(0, 1.5), (100, 1.5)])]
    far = [LineString([(0, 3), (100, 3)])]
    half = [LineString([(50, 0.5), (100, 0.5)]), LineString([(0, 20), (50, 20)])]
    s = centerline_metrics(near, truth, 2.0)
    assert (s.completeness, s.correctness, s.quality) == (1.0, 1.0, 1.0)
    s = centerline_metrics(far, truth, 2.0)
    assert (s.completeness, s.correctness, s.quality) == (0.0, 0.0, 0.0)
    s = centerline_metrics(half, truth, 2.0)
    assert s.completeness == pytest.approx(0.5, abs=0.03)
    assert s.correctness == pytest.approx(0.5, abs=0.03)
    # quality = TP / (TP + FP + FN) = 50 / (50 + 50 + 50)
    assert s.quality == pytest.approx(1 / 3, abs=0.02)
    empty = centerline_metrics([], [], 2.0)
    assert (empty.completeness, empty.correctness, empty.quality) == (1.0, 1.0, 1.0)
    assert centerline_metrics([], truth, 2.0).completeness == 0.0
    with pytest.raises(VectorError):
        centerline_metrics(near, truth, -1.0)


def test_centerline_metrics_in_metres_across_crs() -> None:
    from roadseg.vector_io import reproject_lines

    truth_utm = [LineString([(500000, 5500000), (500200, 5500000)])]
    truth_ll = reproject_lines(truth_utm, "EPSG:32633", "EPSG:4326")
    shifted = [LineString([(500000, 5500001.5), (500200, 5500001.5)])]
    s = centerline_metrics(shifted, truth_ll, 2.0, "EPSG:32633", truth_crs="EPSG:4326")
    assert s.completeness == pytest.approx(1.0) and s.correctness == pytest.approx(1.0)
    assert s.truth_length_m == pytest.approx(200 / 0.9996, rel=1e-3)
    s = centerline_metrics(shifted, truth_ll, 1.0, "EPSG:32633", truth_crs="EPSG:4326")
    assert s.completeness == 0.0
    with pytest.raises(VectorError, match="no CRS"):
        centerline_metrics(shifted, truth_ll, 2.0, None, truth_crs="EPSG:4326")


def test_junctions_found_after_snapping() -> None:
    lines = [
        LineString([(0, 0), (100, 0)]),
        LineString([(50, 0.3), (50, 80)]),  # stem stops 0.3 short of the bar: still a T
        LineString([(0, 50), (100, 50)]),  # crosses the stem: an X
    ]
    pts = find_junctions(lines, 0.5)
    assert sorted(map(tuple, np.round(pts))) == [(50.0, 0.0), (50.0, 50.0)]
    # A road ending 0.3 m off a roundabout, between two of its vertices, beside a
    # vertex: the ring is split there, not the vertices swapped.
    ring = Point(0, 0).buffer(20, quad_segs=16).exterior
    vertex = np.asarray(ring.coords)[5]
    stem = LineString([vertex * 3, vertex * (1 + 0.3 / 20)])
    assert len(find_junctions([ring, stem], 0.5)) == 1
    assert apls([ring, stem], [ring, stem]).apls == 1.0
    j = junction_metrics([lines[0], lines[1]], lines, 2.0)
    assert (j.truth_junctions, j.pred_junctions, j.matched_truth, j.matched_pred) == (2, 1, 1, 1)
    assert j.recall == 0.5 and j.precision == 1.0


def test_evaluate_centerlines_on_spacenet(tmp_path: Path) -> None:
    mask = shared("spacenet", "sample_road_raster_mask.tif")
    truth = shared("spacenet", "sample_roads_for_masking.geojson")
    ev = evaluate_centerlines(mask, truth)
    assert ev.pred_from_raster and ev.truth_lines == 9
    assert ev.centerlines.completeness >= 0.95 and ev.centerlines.correctness >= 0.95
    assert ev.junctions.recall == 1.0 and ev.junctions.precision == 1.0
    assert ev.apls.apls >= 0.95
    out = tmp_path / "roads.geojson"
    vectorize_raster(mask, out, VectorizeOptions())
    ev2 = evaluate_centerlines(out, truth)
    assert not ev2.pred_from_raster
    assert ev2.centerlines.completeness == pytest.approx(ev.centerlines.completeness, abs=1e-6)


@pytest.mark.skipif(OGRINFO is None, reason="ogrinfo (gdal-bin) not installed")
def test_vectorized_gpkg_in_ogr_has_the_raster_crs(tmp_path: Path, make_geotiff) -> None:
    mask = np.zeros((200, 300), np.uint8)
    mask[90:110, :] = 255
    tif = make_geotiff(mask, crs="EPSG:32617", transform=Affine(0.3, 0, 600000, 0, -0.3, 4e6))
    out = tmp_path / "r.gpkg"
    vectorize_raster(tif, out, VectorizeOptions())
    info = _ogrinfo(out)
    assert 'ID["EPSG",32617]' in info and "Feature Count: 1" in info
    assert "ROADSEG_INPUT_KIND=mask" in info
    with rasterio.open(tif) as ds:
        assert ds.crs == CRS.from_epsg(32617)


def test_apls_by_hand() -> None:
    truth = [LineString([(0, 0), (200, 0)])]
    assert apls(truth, truth).apls == 1.0
    assert apls([LineString([(0, 1), (200, 1)])], truth).apls == 1.0  # within the buffer
    # A 10 m gap in the middle. Truth control points at 0, 50, 100, 150, 200 m: 100
    # has nothing within 4 m, and the pairs across the gap have no path: 8 of the
    # 10 pairs score 1. The prediction's own points (0, 50, 95 | 105, 155, 200)
    # are connected only within each piece, and all 6 pairs match the truth.
    gap = [LineString([(0, 0), (95, 0)]), LineString([(105, 0), (200, 0)])]
    s = apls(gap, truth)
    assert (s.truth_pairs, s.pred_pairs) == (10, 6)
    assert s.truth_to_pred == pytest.approx(0.2) and s.pred_to_truth == pytest.approx(1.0)
    assert s.apls == pytest.approx(2 / (1 / 0.2 + 1))
    # A detour of 60 m between points 100 m apart: penalty 0.6 for that pair.
    detour = [LineString([(0, 0), (0, 30), (100, 30), (100, 0)])]
    s = apls(detour, [LineString([(0, 0), (100, 0)])], interval_m=1000, buffer_m=1)
    assert s.truth_to_pred == pytest.approx(1 - 0.6)
    assert apls([], truth).apls == 0.0 and apls([], []).apls == 1.0


@pytest.mark.parametrize(("driver", "suffix"), [("ESRI Shapefile", ".shp"), ("FlatGeobuf", ".fgb")])
def test_other_gdal_formats_read_through_pyogrio(tmp_path: Path, driver: str, suffix: str) -> None:
    pytest.importorskip("pyogrio")
    import pyogrio.raw
    import shapely

    from roadseg.vector_io import read_features, read_lines

    lines = [shapely.LineString([(500000, 4000000), (500100, 4000050)]), None]
    path = tmp_path / f"roads{suffix}"
    pyogrio.raw.write(
        path,
        np.array([None if g is None else shapely.to_wkb(g) for g in lines], dtype=object),
        [np.array([7.5, 12.0]), np.array(["primary", "track"], dtype=object)],
        ["width_m", "highway"],
        driver=driver,
        geometry_type="LineString",
        crs="EPSG:32633",
        layer="roads",
        **({"SPATIAL_INDEX": "NO"} if driver == "FlatGeobuf" else {}),  # it allows no null
    )
    features = read_features(path, one_layer=True)
    assert features.layer == "roads" and features.crs.to_epsg() == 32633
    assert features.properties[0] == {"width_m": 7.5, "highway": "primary"}
    assert features.properties[1]["highway"] == "track"
    assert features.geoms[0].equals(lines[0])
    assert len(read_lines(path).lines) == 1


def test_a_file_gdal_cannot_read_is_one_clear_error(tmp_path: Path) -> None:
    from roadseg.errors import VectorError
    from roadseg.vector_io import read_features

    path = tmp_path / "roads.shp"
    path.write_bytes(b"not a shapefile at all")
    with pytest.raises(VectorError, match="roads.shp"):
        read_features(path)
