"""Road mask (or road probabilities) to a clean, georeferenced road network.

The vector flow of roadseg, in the order it runs:

1. **Read and threshold** the raster in chunks (``chunk_size`` pixels square). A
   probability map is thresholded at ``threshold``; with ``low`` set, pixels down to
   ``low`` are kept when they are connected to a pixel at or above ``threshold``
   (hysteresis).
2. **Clean**: holes smaller than ``hole_area_m2`` are filled and blobs smaller than
   ``min_area_m2`` are dropped, unless they are long and thin (a road piece between
   two gaps spans 10 m or more). Both are decisions about connected components of
   the whole raster; they are made exactly by labelling each chunk, joining labels
   across chunk borders with a union-find, and applying the decisions in a second
   pass that writes the cleaned mask to a 1-bit temporary file.
3. **Thin** the cleaned mask to a one-pixel skeleton (Guo & Hall's parallel
   two-subiteration thinning, the algorithm of :func:`skimage.morphology.thin`,
   run sparsely on the pixels that can change) in windows of a chunk plus a halo.
   The thinning is a cellular automaton: after ``t`` sub-iterations a pixel depends
   only on the input within ``t`` pixels. Each window counts the sub-iterations it
   needs to converge; when every window converged within the halo, the skeleton of
   every chunk's core is *exactly* the skeleton of the whole raster (see
   :func:`~roadseg.vectorize.skeleton.skeletonize_chunks`). Otherwise the halo
   grows and the pass runs again.
   Road half-widths come from the nearest background pixel of each skeleton
   pixel (a k-d tree of the background's edge pixels), which is exact under the
   same halo condition.
4. **Graph**: skeleton pixels become junctions, end points and edges (pixel paths)
   with vectorised numpy/scipy (neighbour tables by binary search, connected
   components and a breadth-first ordering in :mod:`scipy.sparse.csgraph`).
   Every skeleton pixel ends in exactly one edge or node: isolated rings become
   closed edges, loops and parallel edges are kept. Each thinning window also
   builds its core's part of the graph (node pixels, and pieces of chains in
   walking order with where they leave the core; the skeleton two pixels beyond
   the core is exact too) and the parts are stitched across chunk borders into
   the graph :func:`skeleton_graph` gives for the whole skeleton, node and edge
   numbers included (see :func:`~roadseg.vectorize.stitching.merge_chunk_graphs`).
5. **Clean the graph** (in metres): spurs reaching less than ``spur_m`` beyond the
   road's edge are pruned, junctions closer than ``merge_m`` (or inside each
   other's road body) are merged, gaps up to ``gap_m`` between end points whose
   directions agree are bridged, end to end or end to the side of a line (along
   the path of highest road probability when probabilities are given), fragments
   shorter than ``spur_m`` are dropped, each junction moves to where its roads'
   center lines meet, and roads leaving the raster reach its edge.
6. **Lines**: pixel paths go to map coordinates through the affine transform
   (pixel centres at +0.5), are simplified with Douglas-Peucker in metres, and are
   noded at junctions (every line runs from a junction or end point to another).

Memory is bounded by a chunk plus its halo; of the whole raster only the chunks'
graph structures and the graph are held at once. The chunked result equals the unchunked one
(the tests check it bit for bit).

On Dask (``vectorize_raster(..., workers=N)`` or ``scheduler=ADDRESS``) the chunk
steps of stages 1-3 are tasks: a cleaning summary per chunk (labels' statistics and
border labels), the cleaned mask per chunk (a 1-bit file in a hidden folder beside
the output) and a thinning window per chunk, which returns its core's graph
structure (:class:`~roadseg.vectorize.stitching.ChunkGraph`). The client numbers
and joins the labels, decides, grows the halo, stitches the chunk graphs and runs
stages 5-6 with the same functions as in-process, so the result is the same bit
for bit (see :func:`extract_network`).

Metres everywhere, in any CRS: see :class:`GroundScale`.

Where each step lives (one family per module, as in scikit-image):

=============  ====================================================================
module         holds
=============  ====================================================================
``options``    :class:`VectorizeOptions`, :class:`RoadNetwork`, :class:`VectorizeResult`
``ground``     :class:`GroundScale`: metres on the ground in any CRS
``sources``    :class:`RoadSource`, :class:`ArraySource`, :class:`RasterSource`
``chunks``     the chunk grid and the cleaned mask's storage (memory, 1-bit files)
``cleaning``   thresholds, speckle and holes: components joined with a union-find
``thinning``   Guo & Hall thinning (:func:`thin`)
``skeleton``   thinning in windows of a chunk plus a halo that grows when needed
``graph``      :class:`PixelGraph` and :func:`skeleton_graph`
``stitching``  each chunk's graph structure and their stitching across borders
``pruning``    spurs, junction merging and refining, fragments, the raster's edge
``bridging``   gaps between dead ends, straight or along the best probabilities
``lines``      simplification, map coordinates and attributes: the network
``tasks``      the chunk steps as tasks, in-process or on Dask
``pipeline``   :func:`extract_network`, :func:`clean_graph`, :func:`vectorize_array`
``files``      :func:`vectorize_raster`: a GeoTIFF to a GeoPackage or GeoJSON file
=============  ====================================================================
"""

from roadseg.geo import GroundScale
from roadseg.vectorize.files import default_output_path, vectorize_raster
from roadseg.vectorize.graph import PixelEdge, PixelGraph, skeleton_graph
from roadseg.vectorize.lines import douglas_peucker
from roadseg.vectorize.options import RoadNetwork, VectorizeOptions, VectorizeResult
from roadseg.vectorize.pipeline import clean_graph, extract_network, vectorize_array
from roadseg.vectorize.pruning import (
    extend_to_border,
    merge_junctions,
    prune_spurs,
    refine_junctions,
)
from roadseg.vectorize.sources import ArraySource, RasterSource, RoadSource
from roadseg.vectorize.thinning import thin

__all__ = [
    "VectorizeOptions",
    "VectorizeResult",
    "RoadNetwork",
    "GroundScale",
    "ArraySource",
    "RasterSource",
    "RoadSource",
    "thin",
    "skeleton_graph",
    "PixelGraph",
    "PixelEdge",
    "prune_spurs",
    "merge_junctions",
    "refine_junctions",
    "extend_to_border",
    "clean_graph",
    "douglas_peucker",
    "extract_network",
    "vectorize_array",
    "vectorize_raster",
    "default_output_path",
]
