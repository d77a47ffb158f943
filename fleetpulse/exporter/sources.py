"""The reads of Redis, Kafka and the Flink REST API: each bounded in time, run side by side.

Each source gets one budget (``timeout_s``) for its whole read; every call inside takes what
remains of it. :class:`Reader` runs the sources on threads of its own and waits at most the
budget (plus a little) for them; a source still busy then, or failing, is named in the
reading's ``errors`` and read again only once its previous read has returned, so a server that
hangs costs one thread, never a pile of them, and never blocks a scrape for longer.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from fleetpulse.exporter.readings import (
    SEVERITIES,
    JobReading,
    LagReading,
    Readings,
    RedisReading,
    job_reading,
    lag_readings,
    merge_jobs,
    pick_jobs,
    redis_reading,
    unreachable_jobs,
)
from flink_jobs.runtime.redis_client import Client, connect, is_cluster_client
from udfs.contract import DELAYS, POSITIONS_STREAM, region_key

log = logging.getLogger(__name__)
GRACE_S = 0.5  # what the reader waits beyond a source's own budget


class PartialRead(Exception):
    """A source failed, yet knows something (``partial``): the jobs a Flink REST API had
    before it stopped answering are known to be down."""

    def __init__(self, message: str, partial: object) -> None:
        super().__init__(message)
        self.partial = partial


class Budget:
    """What remains of a source's time budget, for the timeout of its next call."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def left(self) -> float:
        remaining = self._end - self._clock()
        if remaining <= 0:
            raise TimeoutError("out of time")
        return remaining


# -- Redis -------------------------------------------------------------------------------------


def read_redis(client: Any, regions: Sequence[str]) -> RedisReading:
    """One round trip: HGETALL of each region hash, ZCOUNT per severity, the newest position
    entry and Redis's clock. ``client``: a :class:`RedisSource` (or a client) whose socket
    timeouts bound the call. On a cluster the pipeline is one round trip per node, and TIME
    goes to the node that holds the stream: that node's clock stamped the entry's id."""
    if isinstance(client, RedisSource):
        client = client.client()
    pipe = client.pipeline(transaction=False)
    for region in regions:
        pipe.hgetall(region_key(region))
    for severity in SEVERITIES:
        pipe.zcount(DELAYS, severity, severity)
    pipe.xrevrange(POSITIONS_STREAM, count=1)
    if is_cluster_client(client):  # TIME has no key: a cluster client would ask its default node
        pipe.execute_command("TIME", target_nodes=client.get_node_from_key(POSITIONS_STREAM))
    else:
        pipe.time()
    answers = pipe.execute()
    n = len(regions)
    hashes, counts = answers[:n], answers[n : n + len(SEVERITIES)]
    newest, redis_time = answers[-2], answers[-1]
    return redis_reading(regions, hashes, counts, newest, redis_time)


class RedisSource:
    """The Redis at ``url``, standalone or cluster
    (:func:`flink_jobs.runtime.redis_client.connect`). The client is made on the first read,
    not before: telling a cluster node from a server takes a connection, and Redis may not be
    up yet when the exporter starts."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            t = self.timeout_s
            self._client = connect(
                self.url,
                # a failed read fails now, as on one server, not after 3 rediscoveries
                cluster_options={"cluster_error_retry_attempts": 0},
                socket_timeout=t,
                socket_connect_timeout=t,
                retry_on_timeout=False,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def redis_client(url: str, timeout_s: float) -> RedisSource:
    """What :func:`read_redis` reads: connects on the first read."""
    return RedisSource(url, timeout_s)


# -- Kafka -------------------------------------------------------------------------------------


class KafkaLag:
    """Committed offsets of consumer groups against the topics' end offsets.

    The committed offsets come from a consumer per group (its ``group.id``) that never
    subscribes, so never joins the group: its ``committed()`` is an OffsetFetch sent by the
    consumer's group handler, for every partition the cluster's metadata lists. Not the Admin
    API's ``list_consumer_group_offsets``: librdkafka's coordinator-targeted admin requests
    abort the process when a connection drops under one ("Assertion eonce->refcnt > 0",
    librdkafka issues #4605 and #3663). Listing the groups (a request to every broker), the
    topics (metadata) and the end offsets (to the partitions' leaders) take other paths and
    stay on the admin client. One librdkafka client per group, kept between reads."""

    def __init__(
        self, bootstrap: str, timeout_s: float, properties: Mapping[str, str] | None = None
    ) -> None:
        """``properties``: the user's Kafka client properties, librdkafka names (security)."""
        from confluent_kafka.admin import AdminClient

        self.timeout_s = timeout_s
        # no `logger`: a client's log lines would wait in a queue only poll() drains;
        # librdkafka writes them to stderr (the exporter's log) instead
        self._config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            "client.id": "fleetpulse-exporter",
            "socket.timeout.ms": max(int(timeout_s * 1000), 10),
            **(properties or {}),
        }
        self._admin = AdminClient(self._config)
        self._consumers: dict[str, Any] = {}  # group -> its offset reader, kept across reads

    def read(self, groups: Sequence[str]) -> tuple[LagReading, ...]:
        """Lags of ``groups``, of every group the cluster lists when empty."""
        from confluent_kafka import KafkaError, KafkaException

        try:
            return self._read(groups)
        except (TimeoutError, KafkaException) as exc:
            if isinstance(exc, KafkaException) and not is_error(exc, KafkaError._TIMED_OUT):
                raise
            raise TimeoutError(f"Kafka did not answer within {self.timeout_s:g} s") from None

    def _read(self, groups: Sequence[str]) -> tuple[LagReading, ...]:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        budget = Budget(self.timeout_s)
        names = list(groups)
        if not names:
            listed = self._admin.list_consumer_groups(request_timeout=budget.left())
            names = sorted(g.group_id for g in listed.result(timeout=budget.left()).valid)
        self._keep_consumers(names)  # all made before any is asked: they connect side by side
        # Every topic's partitions, to ask the committed offsets of. Read each time, it also
        # renews the leaders (and leader epochs) list_offsets asks: after a broker restart a
        # stale epoch was answered FENCED_LEADER_EPOCH until the client's own refresh.
        metadata = self._admin.list_topics(timeout=budget.left())
        partitions = [
            TopicPartition(name, p)
            for name, topic in sorted(metadata.topics.items())
            for p in sorted(topic.partitions)
        ]
        committed: dict[str, dict[tuple[str, int], int]] = {}
        for group in names:
            try:
                answer = self._consumers[group].committed(partitions, timeout=budget.left())
            except KafkaException as exc:
                if not is_error(exc, KafkaError.GROUP_ID_NOT_FOUND):
                    raise
                continue  # deleted since it was listed
            committed[group] = {
                (tp.topic, tp.partition): tp.offset
                for tp in answer
                if tp.error is None and tp.offset >= 0  # no commit: OFFSET_INVALID
            }
        wanted = {tp for offsets in committed.values() for tp in offsets}
        ends: dict[tuple[str, int], int] = {}
        if wanted:
            futures = self._admin.list_offsets(
                {TopicPartition(t, p): OffsetSpec.latest() for t, p in sorted(wanted)},
                request_timeout=budget.left(),
            )
            for tp, future in futures.items():
                try:
                    ends[(tp.topic, tp.partition)] = future.result(timeout=budget.left()).offset
                except KafkaException as exc:
                    if not is_error(exc, KafkaError.UNKNOWN_TOPIC_OR_PART):
                        raise  # a topic deleted since the commit has no lag: anything else fails
        return lag_readings(committed, ends)

    def _keep_consumers(self, groups: Sequence[str]) -> None:
        """A consumer for each of ``groups`` (made on first use); those of groups no longer
        read are closed. Never subscribed nor assigned: nothing is fetched or committed."""
        from confluent_kafka import Consumer

        # at least fetch.wait.max.ms + 1000, or librdkafka warns
        socket_timeout_ms = max(int(str(self._config["socket.timeout.ms"])), 1000)
        for group in set(self._consumers) - set(groups):
            self._consumers.pop(group).close()
        for group in groups:
            consumer = self._consumers.get(group)
            if consumer is None:
                consumer = self._consumers[group] = Consumer(
                    {
                        **self._config,
                        "group.id": group,
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        # what the admin API asked for: offsets of pending transactions too
                        "isolation.level": "read_uncommitted",
                        "fetch.wait.max.ms": 0,  # never fetches
                        "socket.timeout.ms": socket_timeout_ms,
                    }
                )
            consumer.consume(1000, timeout=0)  # drains the client's error events, never a record

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()


def is_error(exc: Exception, code: int) -> bool:
    """Whether a :class:`confluent_kafka.KafkaException` carries the error ``code`` (a group
    or topic that no longer exists, a timeout)."""
    error = exc.args[0] if exc.args else None
    return bool(getattr(error, "code", lambda: None)() == code)


# -- Flink -------------------------------------------------------------------------------------


def http_json(url: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def normalize_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port[/]`` as a base URL without a trailing slash."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


class FlinkJobs:
    """The jobs of one Flink REST API; remembers the names it last saw, so that when the API
    stops answering (its MiniCluster died with the job) those jobs read as down, not absent."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        get: Callable[[str, float], Any] = http_json,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.url = normalize_url(url)
        self.timeout_s = timeout_s
        self._get = get
        self._now_ms = now_ms
        self._seen: set[str] = set()

    def read(self) -> list[JobReading]:
        budget = Budget(self.timeout_s)
        try:
            overview = self._get(f"{self.url}/jobs/overview", budget.left())
            jobs = pick_jobs(overview.get("jobs", []))
        except (OSError, ValueError, AttributeError) as exc:
            raise PartialRead(f"{self.url}: {exc}", unreachable_jobs(self.url, self._seen)) from exc
        self._seen = {str(j["name"]) for j in jobs}
        readings, failed = [], []
        for job in jobs:
            checkpoints = metrics = None
            if job.get("state") == "RUNNING":
                base = f"{self.url}/jobs/{job.get('jid')}"
                try:
                    checkpoints = self._get(f"{base}/checkpoints", budget.left())
                    metrics = self._get(f"{base}/metrics?get=numRestarts", budget.left())
                except (OSError, ValueError) as exc:
                    failed.append(f"{job['name']}: {exc}")
            readings.append(job_reading(self.url, job, checkpoints, metrics, self._now_ms()))
        if failed:
            raise PartialRead(f"{self.url}: " + "; ".join(failed), readings)
        return readings


# -- all of them -------------------------------------------------------------------------------


def source_of(key: str) -> str:
    """The source label of a task key ("flink http://..." -> "flink")."""
    return key.split(" ", 1)[0]


class Reader:
    """Reads every source at once into one :class:`Readings`; never raises, never waits
    longer than ``timeout_s`` + :data:`GRACE_S`."""

    def __init__(
        self,
        timeout_s: float,
        redis: Callable[[], RedisReading] | None = None,
        kafka: Callable[[], tuple[LagReading, ...]] | None = None,
        flink: Sequence[FlinkJobs] = (),
    ) -> None:
        self.timeout_s = timeout_s
        self.tasks: dict[str, Callable[[], Any]] = {}
        if redis is not None:
            self.tasks["redis"] = redis
        if kafka is not None:
            self.tasks["kafka"] = kafka
        for jobs in flink:
            self.tasks[f"flink {jobs.url}"] = jobs.read
        self._flink = bool(flink)
        self._pool = ThreadPoolExecutor(
            max_workers=max(len(self.tasks), 1), thread_name_prefix="exporter-read"
        )
        self._running: dict[str, Future[Any]] = {}

    def read(self) -> Readings:
        errors: dict[str, str] = {}
        started: dict[str, Future[Any]] = {}
        for key, task in self.tasks.items():
            previous = self._running.get(key)
            if previous is not None and not previous.done():
                errors[key] = "the previous read has not returned yet"
                continue
            started[key] = self._running[key] = self._pool.submit(task)
        wait(list(started.values()), timeout=self.timeout_s + GRACE_S)
        results: dict[str, Any] = {}
        for key, future in started.items():
            if not future.done():
                errors[key] = f"no answer within {self.timeout_s:g} s"
                continue
            exc = future.exception()
            if isinstance(exc, PartialRead):
                errors[key] = str(exc)
                results[key] = exc.partial
            elif exc is not None:
                errors[key] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                results[key] = future.result()
        return assemble(results, errors, self._flink)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def assemble(results: Mapping[str, Any], errors: Mapping[str, str], flink: bool) -> Readings:
    """The readings of the tasks that answered (``results``, by task key)."""
    per_url = [v for k, v in sorted(results.items()) if source_of(k) == "flink"]
    return Readings(
        redis=results.get("redis"),
        lags=results.get("kafka"),
        jobs=merge_jobs(per_url) if flink else None,
        errors=dict(errors),
    )
