"""The gateway's Redis clients from a URL, standalone or cluster (asyncio): the twin of
:mod:`flink_jobs.runtime.redis_client`, which the gateway does not import (its package depends
on ``udfs`` only). Give it any node's URL; docs/redis-cluster.md."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisClusterException, ResponseError

from udfs.redis_url import cluster_enabled

AsyncClient = aioredis.Redis | aioredis.RedisCluster
# what a Redis call can raise: a cluster client that reaches no node raises
# RedisClusterException, which is not a RedisError
REDIS_ERRORS = (redis.RedisError, RedisClusterException)


async def aconnect(url: str, **kwargs: Any) -> AsyncClient:
    """A client of the Redis at ``url``: a cluster client if that node is in a cluster (its
    ``INFO cluster`` says; ``CLUSTER INFO`` for a user without INFO, which is @dangerous)."""
    probe = aioredis.Redis.from_url(url, **kwargs)
    try:
        cluster = cluster_enabled(await probe.info("cluster"))
    except NoPermissionError:
        try:
            await probe.execute_command("CLUSTER INFO")
            cluster = True
        except ResponseError:  # "cluster support disabled" (or no permission for it either)
            cluster = False
    finally:
        await probe.aclose()
    if cluster:
        return aioredis.RedisCluster.from_url(url, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, aioredis.RedisCluster)
