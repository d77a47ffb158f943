"""The routing tree (pure): an alert enters at the root and descends into the first child route
that matches, or every matching child while ``continue`` is set, as in Alertmanager. Settings
(receiver, group_by, timers) are inherited from the parent route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerting.config import RouteConfig
from alerting.matchers import Matcher, all_match

DEFAULT_GROUP_BY = ("group", "class")
DEFAULT_GROUP_WAIT_MS = 30_000
DEFAULT_GROUP_INTERVAL_MS = 300_000
DEFAULT_REPEAT_INTERVAL_MS = 4 * 3_600_000


@dataclass(frozen=True)
class Route:
    path: str  # "0", "0.2", "0.2.1": stable id of the route in the tree
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_wait_ms: int
    group_interval_ms: int
    repeat_interval_ms: int
    children: tuple[Route, ...]

    def group_key(self, labels: Mapping[str, str]) -> str:
        """Id of the aggregation group an alert joins on this route."""
        values = ",".join(f"{k}={labels.get(k, '')}" for k in self.group_by)
        return f"{self.path}|{self.receiver}|{values}"


def build(cfg: RouteConfig, parent: Route | None = None, path: str = "0") -> Route:
    receiver = cfg.receiver or (parent.receiver if parent else "")

    def pick(own: int | None, inherited: int | None, default: int) -> int:
        return own if own is not None else (inherited if inherited is not None else default)

    group_by = (
        tuple(cfg.group_by)
        if cfg.group_by is not None
        else parent.group_by
        if parent
        else DEFAULT_GROUP_BY
    )
    node = Route(
        path=path,
        receiver=receiver,
        matchers=cfg.all_matchers(),
        continue_=cfg.continue_,
        group_by=group_by,
        group_wait_ms=pick(
            cfg.group_wait_ms, parent.group_wait_ms if parent else None, DEFAULT_GROUP_WAIT_MS
        ),
        group_interval_ms=pick(
            cfg.group_interval_ms,
            parent.group_interval_ms if parent else None,
            DEFAULT_GROUP_INTERVAL_MS,
        ),
        repeat_interval_ms=pick(
            cfg.repeat_interval_ms,
            parent.repeat_interval_ms if parent else None,
            DEFAULT_REPEAT_INTERVAL_MS,
        ),
        children=(),
    )
    children = tuple(build(c, node, f"{path}.{i}") for i, c in enumerate(cfg.routes))
    return Route(**{**node.__dict__, "children": children})


def match(route: Route, labels: Mapping[str, str]) -> list[Route]:
    """The routes (leaves of the descent) an alert with ``labels`` is delivered through."""
    if not all_match(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.children:
        hits = match(child, labels)
        if hits:
            found.extend(hits)
            if not child.continue_:
                break
    return found or [route]


def index(route: Route) -> dict[str, Route]:
    out = {route.path: route}
    for c in route.children:
        out.update(index(c))
    return out


def config_path(route: Route) -> str:
    """``"0.2.1"`` -> ``"route.routes[2].routes[1]"`` (the field path in the YAML file)."""
    return "route" + "".join(f".routes[{i}]" for i in route.path.split(".")[1:])


def explain(root: Route, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(receiver, route)`` per route an alert with ``labels`` is delivered through, the route
    as its field path and its matchers, e.g. ``route.routes[0] {severity="critical"}``."""
    out = []
    for leaf in match(root, labels):
        matchers = ", ".join(m.quoted() for m in leaf.matchers)
        out.append((leaf.receiver, config_path(leaf) + (f" {{{matchers}}}" if matchers else "")))
    return out
