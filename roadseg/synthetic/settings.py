"""Scene settings: the kinds of landscape the generator makes, in one registry.

A setting decides how a scene looks (its :class:`~roadseg.synthetic.palettes.Style`)
and which stages build its road network and dirt tracks, in which order. Every stage
draws from the scene's one random generator, so the stages of a setting and their
order are part of every scene it makes: a new kind of landscape (suburbs, a dense
city, highways, ...) is a new entry in :data:`SETTINGS`, not a change to the stages
of an existing one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from roadseg.synthetic.elements import Line
from roadseg.synthetic.landscapes import (
    desert_network,
    desert_objects,
    desert_style,
    forest_network,
    forest_objects,
    forest_style,
    highway_network,
    highway_style,
    rural_network,
    rural_style,
)
from roadseg.synthetic.lookalikes import (
    terraces_network,
    terraces_objects,
    terraces_style,
    winter_network,
    winter_objects,
    winter_style,
)
from roadseg.synthetic.network import NetworkBuilder, place_tracks
from roadseg.synthetic.palettes import Style, make_style
from roadseg.synthetic.scenery import Islands, Scenery, countryside_objects
from roadseg.synthetic.urban import (
    city_network,
    city_objects,
    city_style,
    suburbs_network,
    suburbs_objects,
    suburbs_style,
)


@dataclass(frozen=True)
class Setting:
    """One kind of landscape.

    Attributes:
        name: its key in :data:`SETTINGS`.
        make_style: draws the scene-wide look (the first draws of the generator).
        build_network: runs the network stages on a fresh builder and returns the
            roundabout islands (x, y, radius).
        place_tracks: draws the dirt tracks (never roads) once the network is built.
        place_objects: places buildings, cars, tree crowns and pads along the built
            (and simplified) roads.
    """

    name: str
    make_style: Callable[[np.random.Generator], Style]
    build_network: Callable[[NetworkBuilder], list[tuple[float, float, float]]]
    place_tracks: Callable[[np.random.Generator, NetworkBuilder, Style], list[Line]]
    place_objects: Callable[
        [np.random.Generator, NetworkBuilder, list[Line], Islands, Style], Scenery
    ] = countryside_objects


def countryside_network(net: NetworkBuilder) -> list[tuple[float, float, float]]:
    """Rivers, towns, main roads through them, street grids in the towns, secondary
    and minor roads branching off until the style's road share, then roundabouts."""
    net.rivers_stage()
    net.towns_stage()
    net.main_stage()
    net.grid_stage()
    net.branch_stage()
    return net.roundabout_stage()


def no_tracks(rng: np.random.Generator, net: NetworkBuilder, style: Style) -> list[Line]:
    """No dirt tracks (built-up settings)."""
    return []


#: Fields, meadows and forests with rivers, small towns and their street grids.
COUNTRYSIDE = Setting("countryside", make_style, countryside_network, place_tracks)

#: North-American suburbs: streets with sidewalks, houses, driveways, lawns, pools.
SUBURBS = Setting("suburbs", suburbs_style, suburbs_network, no_tracks, suburbs_objects)

#: Dense city blocks: wide marked roads, tall buildings, car parks, plazas.
CITY = Setting("city", city_style, city_network, no_tracks, city_objects)

#: Dirt, gravel and narrow paved roads on bare soil with little contrast; villages.
RURAL = Setting("rural", rural_style, rural_network, place_tracks)

#: Roads through forest, under partial canopy.
FOREST = Setting("forest", forest_style, forest_network, place_tracks, forest_objects)

#: Divided multi-lane highways with interchanges across a landscape.
HIGHWAY = Setting("highway", highway_style, highway_network, place_tracks)

#: Desert towns: sand, flat light roofs, walled compounds, drifts on the roads.
DESERT = Setting("desert", desert_style, desert_network, place_tracks, desert_objects)

#: Snow fields and patchy conifer forest with ploughed roads (hard negatives).
WINTER = Setting("winter", winter_style, winter_network, place_tracks, winter_objects)

#: Rows of houses close to the street, many flat dark roofs (hard negatives).
TERRACES = Setting("terraces", terraces_style, terraces_network, no_tracks, terraces_objects)

#: Every setting by name.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (COUNTRYSIDE, SUBURBS, CITY, RURAL, FOREST, HIGHWAY, DESERT, WINTER, TERRACES)
}

#: The setting of every scene until a SceneSpec chooses one.
DEFAULT_SETTING = COUNTRYSIDE.name
