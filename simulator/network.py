"""The road network between hubs: which hub pairs a truck drives between.

Each edge joins a hub to one of its five nearest neighbours within 1,100 km, kept only when the
great circle between them stays over land (checked against the US state boundaries when the
list was made; ``tests/simulator/test_routes.py`` re-checks every simulated position). A
neighbour list, not a road graph: legs are great-circle lines, which is as close to a road as a
map at fleet zoom shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator import SimulatorError
from simulator.geo import Hub

EDGES: tuple[tuple[str, str], ...] = (
    ("ABQ", "DEN"),
    ("ABQ", "ELP"),
    ("ABQ", "LAS"),
    ("ABQ", "PHX"),
    ("ABQ", "SLC"),
    ("ATL", "BNA"),
    ("ATL", "CLT"),
    ("ATL", "JAX"),
    ("ATL", "MEM"),
    ("ATL", "MIA"),
    ("ATL", "MSY"),
    ("ATL", "ORL"),
    ("BNA", "CLT"),
    ("BNA", "CMH"),
    ("BNA", "IND"),
    ("BNA", "MEM"),
    ("BNA", "MSY"),
    ("BNA", "STL"),
    ("BOI", "OAK"),
    ("BOI", "PDX"),
    ("BOI", "SAC"),
    ("BOI", "SEA"),
    ("BOI", "SLC"),
    ("BOS", "BUF"),
    ("BOS", "EWR"),
    ("BUF", "EWR"),
    ("BUF", "PHL"),
    ("BUF", "PIT"),
    ("BUF", "WAS"),
    ("CHI", "IND"),
    ("CHI", "MKC"),
    ("CHI", "MSP"),
    ("CHI", "OMA"),
    ("CHI", "STL"),
    ("CLT", "JAX"),
    ("CLT", "RIC"),
    ("CLT", "WAS"),
    ("CMH", "IND"),
    ("CMH", "PIT"),
    ("DAL", "ELP"),
    ("DAL", "HOU"),
    ("DAL", "MEM"),
    ("DAL", "MSY"),
    ("DAL", "OKC"),
    ("DAL", "SAT"),
    ("DEN", "ELP"),
    ("DEN", "MKC"),
    ("DEN", "OKC"),
    ("DEN", "OMA"),
    ("DEN", "SLC"),
    ("DTW", "IND"),
    ("ELP", "PHX"),
    ("ELP", "SAT"),
    ("EWR", "PHL"),
    ("EWR", "WAS"),
    ("HOU", "MEM"),
    ("HOU", "MSY"),
    ("HOU", "OKC"),
    ("HOU", "SAT"),
    ("IND", "MSP"),
    ("IND", "STL"),
    ("JAX", "MIA"),
    ("JAX", "ORL"),
    ("JAX", "TPA"),
    ("LAS", "LAX"),
    ("LAS", "OAK"),
    ("LAS", "PHX"),
    ("LAS", "SAC"),
    ("LAS", "SAN"),
    ("LAS", "SLC"),
    ("LAX", "OAK"),
    ("LAX", "PHX"),
    ("LAX", "SAC"),
    ("MEM", "MKC"),
    ("MEM", "MSY"),
    ("MEM", "STL"),
    ("MIA", "ORL"),
    ("MIA", "TPA"),
    ("MKC", "MSP"),
    ("MKC", "OKC"),
    ("MKC", "OMA"),
    ("MKC", "STL"),
    ("MSP", "OMA"),
    ("MSP", "STL"),
    ("OAK", "PDX"),
    ("OAK", "SAC"),
    ("OAK", "SEA"),
    ("OKC", "OMA"),
    ("OKC", "SAT"),
    ("OMA", "STL"),
    ("ORL", "TPA"),
    ("PDX", "SAC"),
    ("PDX", "SLC"),
    ("PHL", "PIT"),
    ("PHX", "SAN"),
    ("PHX", "SLC"),
    ("PIT", "RIC"),
    ("PIT", "WAS"),
    ("RIC", "WAS"),
    ("SAC", "SEA"),
)


def neighbours(hubs: Sequence[Hub]) -> dict[str, tuple[str, ...]]:
    """Adjacency by hub id over the hubs given (edges to unknown hubs are dropped)."""
    ids = {h.id for h in hubs}
    adj: dict[str, list[str]] = {h.id: [] for h in hubs}
    for a, b in EDGES:
        ha, hb = f"HUB-{a}", f"HUB-{b}"
        if ha in ids and hb in ids:
            adj[ha].append(hb)
            adj[hb].append(ha)
    lonely = sorted(k for k, v in adj.items() if not v)
    if lonely:
        raise SimulatorError(f"hubs without a route to any other hub: {lonely}")
    return {k: tuple(sorted(v)) for k, v in adj.items()}
