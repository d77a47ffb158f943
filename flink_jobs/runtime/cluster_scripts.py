"""Lua scripts on a Redis Cluster, pipelined: the writers' cluster paths run theirs through here.

redis-py's ``Script`` objects refuse a ``ClusterPipeline``, but an ``EVALSHA`` queued as a plain
command is routed by its declared keys (all of one slot, or the client refuses it) and grouped
by node like any other. ``SCRIPT LOAD`` on a ``RedisCluster`` loads on every primary; a node
that restarts (or fails over to a replica that never saw the script) answers ``NOSCRIPT``:
then the scripts are loaded again and only the commands that failed are sent again, so a
command that did run is never run twice and its result is kept.

Every script is loaded with a ``#!lua`` shebang: without one, Redis 7 lets a script reach keys
of other slots held by the same node (compatibility with older scripts), so a script that
touches an undeclared key would work or fail by where the slots happen to sit. With it, the
node refuses any key outside the declared keys' slot, always: the cluster tests prove it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

Command = tuple[Any, ...]  # the arguments of one ``execute_command``
STRICT = "#!lua\n"  # Redis 7 script flags: none, so no access beyond the declared keys' slot


class ClusterScripts:
    """Named scripts loaded on every primary of ``client``'s cluster."""

    def __init__(self, client: redis.RedisCluster, **sources: str) -> None:
        self.client = client
        self.sources = {name: STRICT + src for name, src in sources.items()}
        self.sha: dict[str, str] = {}
        self.load()

    def load(self) -> None:
        for name, src in self.sources.items():
            self.sha[name] = str(self.client.script_load(src))

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Command:
        """The ``EVALSHA`` of script ``name`` on ``keys``, for :meth:`run`."""
        return ("EVALSHA", self.sha[name], len(keys), *keys, *args)

    def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one cluster pipeline (in order per node); their results."""
        results = self._pipeline(commands)
        redo = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if redo:
            self.load()
            for i, r in zip(redo, self._pipeline([commands[i] for i in redo]), strict=True):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        if not commands:
            return []
        pipe = self.client.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))
