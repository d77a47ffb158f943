"""Fixtures of the alerting tests: a real local HTTP receiver, a Kafka producer, and ``start``
(a dispatcher on the test's own topics, run in a thread and stopped after the test).

This folder is named like the package it tests and has no ``__init__.py``; with ``tests/`` on
``sys.path`` (pytest's rootdir insertion) ``import alerting`` would find ``tests/alerting`` as a
namespace package before the editable install's finder runs. Putting the repository root first
makes ``alerting`` the real package.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("alerting"), "__file__", "") is None:  # a namespace got imported
    for name in [m for m in sys.modules if m == "alerting" or m.startswith("alerting.")]:
        del sys.modules[name]
sys.path.insert(0, str(Path(__file__).parent))

from alerting_harness import Running  # noqa: E402
from alerting_receiver import Receiver  # noqa: E402

from alerting.config import parse_config  # noqa: E402
from alerting.metrics import Metrics  # noqa: E402
from alerting.service import Dispatcher, Settings  # noqa: E402
from alerting.store import Store  # noqa: E402
from udfs.contract import TopicNames  # noqa: E402


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    """The dispatcher's SQLite state in a directory of the test's own."""
    s = Store(tmp_path / "state")
    yield s
    s.close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture()
def producer(kafka_bootstrap: str) -> Iterator[Any]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    yield p
    p.close()


@pytest.fixture()
def start(
    kafka_bootstrap: str, unique_topics: TopicNames, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    """``start(config_text, metrics_port=None, metrics=None, **settings)``: a running
    dispatcher on ``unique_topics`` (``settings`` override :class:`Settings` fields)."""
    running: list[Running] = []

    def make(
        text: str, metrics_port: int | None = None, metrics: Metrics | None = None, **overrides: Any
    ) -> Running:
        fields: dict[str, Any] = {
            "bootstrap": kafka_bootstrap,
            "state_dir": str(tmp_path / "state"),
            "alerts_topic": unique_topics.alerts,
            "dlq_topic": unique_topics.dlq,
            "group_id": f"alerting-{unique_topics.alerts}",
            "metrics_port": metrics_port,
            "poll_ms": 50,
            **overrides,
        }
        r = Running(
            Dispatcher(
                parse_config(text, "test.yaml"), Settings(**fields), metrics=metrics or Metrics()
            )
        )
        running.append(r)
        return r

    yield make
    for r in running:
        if r.thread.is_alive():
            r.stop()
