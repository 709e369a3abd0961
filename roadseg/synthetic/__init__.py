"""Procedural aerial-like RGB scenes with exact road masks and road centerlines.

A scene is defined by its size and a :class:`SceneSpec`. It is built in two stages:

1. A *layout*: vector geometry for the whole scene, in pixel coordinates (x = column,
   y = row, pixel centres at +0.5): road polylines with widths (straight streets,
   curves, T and X junctions, roundabouts), rivers, dirt tracks, towns, buildings,
   cars, trees and roundabout islands. One random generator seeded from ``spec.seed``
   and the size makes it; its cost grows with the number of objects, not of pixels
   (well under a second for 1024 x 1024, some 20-40 s for 16384 x 16384). It is
   cached, so rendering many windows of one scene builds it once.
2. *Rendering* of any window. Every pixel is a function of the layout, the seed and
   the pixel's global row and column only: textures are value noise and cellular
   noise made by hashing integer lattice coordinates, objects are rasterised from
   distances to their geometry, and the final blur reads a halo rendered the same
   way. A window rendered on its own is therefore bit-identical to the same window
   cut from the whole scene, which lets :func:`write_scene` stream scenes of any
   size in blocks with bounded memory.

The road mask is the road surface (distance from the pixel centre to a road
centerline <= half its width), including where tree crowns, cars or shadows hide it.
Rivers, dirt tracks, field boundaries, hedges and tramlines look like roads but are
never in the mask.

Modules, in the order a scene flows through them: ``spec`` (public value types),
``noise`` (hash-based noise), ``palettes`` (colours and the scene's style),
``geometry`` (polyline primitives, the segment index), ``elements`` (what a layout is
made of), ``network`` (roads, rivers, tracks), ``objects`` (buildings, cars, trees),
``settings`` (the registry of landscape settings: countryside, suburbs, city, rural,
forest, highway, desert, winter, terraces; ``SceneSpec.setting`` picks one) with what they share,
``streets`` (street grids, curved streets, highways), ``scenery`` (what a setting
places), ``surfaces`` (pads: driveways, pools, car parks, crosswalks), ``urban``
(suburbs, city), ``landscapes`` (rural, forest, highway, desert) and ``lookalikes``
(winter, terraces: what real previews showed the model mistaking for roads), ``layout`` (the
cached layout of one scene), ``canvas`` and ``landcover`` and ``rendering`` (one
window), ``generate`` (scenes in memory) and ``writing`` (GeoTIFF and GeoJSON files).
"""

from roadseg.synthetic.generate import generate_scene, render_window, road_fraction
from roadseg.synthetic.settings import DEFAULT_SETTING, SETTINGS
from roadseg.synthetic.spec import MAX_SIZE, Scene, ScenePaths, SceneSpec
from roadseg.synthetic.writing import scene_transform, write_scene

__all__ = [
    "SceneSpec",
    "Scene",
    "ScenePaths",
    "generate_scene",
    "render_window",
    "write_scene",
    "scene_transform",
    "road_fraction",
    "MAX_SIZE",
    "SETTINGS",
    "DEFAULT_SETTING",
]
