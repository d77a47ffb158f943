"""Redis clients from a URL, standalone or cluster: the jobs, the exporter, the CLI and the
benchmarks build theirs here (the gateway's asyncio twin: :mod:`ws_gateway.redis_client`).

A user points fleetpulse at a Redis Cluster the way they point it at one server, with the URL of
any node (``redis://`` or ``rediss://``, credentials included); the node's ``INFO cluster``
says which client to build. A cluster client follows slot redirects and groups a pipeline by
node; code that runs scripts asks :func:`is_cluster_client` and declares every key
(docs/redis-cluster.md).
"""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisClusterException, ResponseError

from udfs.redis_url import cluster_enabled

Client = redis.Redis | redis.RedisCluster
# what a Redis call can raise: a cluster client that reaches no node raises
# RedisClusterException, which is not a RedisError
REDIS_ERRORS = (redis.RedisError, RedisClusterException)


def is_cluster_url(url: str, **kwargs: Any) -> bool:
    """Whether the node at ``url`` runs in cluster mode (one short connection)."""
    probe = redis.Redis.from_url(url, **kwargs)
    try:
        try:
            return cluster_enabled(cast(dict[str, Any], probe.info("cluster")))
        except NoPermissionError:  # INFO is @dangerous: a least-privilege ACL user lacks it
            try:
                probe.execute_command("CLUSTER INFO")
            except ResponseError:  # "cluster support disabled" (or no permission for it either)
                return False
            return True
    finally:
        probe.close()


def connect(url: str, cluster_options: dict[str, Any] | None = None, **kwargs: Any) -> Client:
    """A client of the Redis at ``url``: ``redis.RedisCluster`` if that node is in a cluster.
    ``kwargs`` are the connection options both take (timeouts, retries); ``cluster_options``
    only a cluster client takes (``cluster_error_retry_attempts``)."""
    if is_cluster_url(url, **kwargs):
        return redis.RedisCluster.from_url(url, **kwargs, **(cluster_options or {}))
    return redis.Redis.from_url(url, **kwargs)


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, redis.RedisCluster | aioredis.RedisCluster)
