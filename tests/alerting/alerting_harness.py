"""The dispatcher under test with real Kafka: its configuration for a local receiver, a
thread that runs it, and readers of the dead-letter topic. Shared by the Kafka tests of this
folder (the ``start`` fixture in ``conftest.py`` builds on it)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from alerting.service import Dispatcher
from fleetpulse.waiting import wait_until


def config_text(receiver: Any, path: str = "/hook", **route: str) -> str:
    timers = {"group_wait": "20ms", "group_interval": "50ms", "repeat_interval": "1h", **route}
    return f"""
receivers:
  - name: hook
    type: webhook
    url: "{receiver.url(path)}"
    secret: s3cret
    timeout: 1s
    retry: {{max_attempts: 20, initial_backoff: 20ms, max_backoff: 200ms}}
route:
  receiver: hook
  group_by: [group, class]
  group_wait: {timers["group_wait"]}
  group_interval: {timers["group_interval"]}
  repeat_interval: {timers["repeat_interval"]}
inhibit_rules:
  - source_match: {{class: truck_offline}}
    target_match: {{class: truck_stopped_unplanned}}
    equal: [truck_id]
"""


class Running:
    """A dispatcher running in a thread; ``error`` holds what ended ``run`` if it raised."""

    def __init__(self, d: Dispatcher) -> None:
        self.d = d
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.d.run()
        except BaseException as exc:
            self.error = exc
            raise

    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def stop(self) -> None:
        self.d.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def dlq_messages(
    bootstrap: str, topic: str, n: int, timeout_s: float = 20
) -> list[tuple[bytes | None, bytes]]:
    """At least ``n`` ``(kafka_key, value)`` records of ``topic``, from its start."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=200
    )
    got: list[tuple[bytes | None, bytes]] = []
    try:

        def enough() -> bool:
            got.extend((m.key, m.value) for m in c)
            return len(got) >= n

        wait_until(enough, timeout_s, f"{n} dead letters on {topic}")
    finally:
        c.close()
    return got


def dlq_records(bootstrap: str, topic: str, n: int) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in dlq_messages(bootstrap, topic, n)]


def spawn_dispatcher(
    root: Path,
    bootstrap: str,
    config: Path,
    state_dir: Path,
    group: str,
    topics: Any,
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    """``python -m alerting run`` as its own process (to be SIGKILLed), logging to ``log``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alerting",
            "run",
            "--bootstrap",
            bootstrap,
            "--config",
            str(config),
            "--state-dir",
            str(state_dir),
            "--group-id",
            group,
            "--instance-id",
            f"{group}-1",
            "--alerts-topic",
            topics.alerts,
            "--dlq-topic",
            topics.dlq,
            "--log-level",
            "WARNING",
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=log,
        stderr=log,
    )
