"""The Prometheus server `fleetpulse up --prometheus` runs: its configuration (generated into the
data directory) and its command line. The binary is the machine's own (Debian's `prometheus`
package, or ``--prometheus-bin``); fleetpulse downloads none.

The configuration is written as JSON, which is YAML too, so no YAML library is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetpulse import PlatformError
from fleetpulse.paths import PROJECT_ROOT

RULES_DIR = PROJECT_ROOT / "deploy" / "prometheus" / "rules"
SCRAPE_INTERVAL = "15s"
# Scrape jobs whose own `job` label wins over the scrape job's name: the exporter's families
# carry a `job` label of their own (the Flink or alerting job), which Prometheus would otherwise
# rename to `exported_job`.
HONOR_LABELS = frozenset({"fleetpulse-exporter"})


def find_prometheus(binary: str) -> str:
    """The path of the ``prometheus`` executable ``binary`` names, or a clear error."""
    found = shutil.which(binary)
    if found is None:
        raise PlatformError(
            f"--prometheus needs the `prometheus` binary, and {binary!r} is not an executable "
            "on PATH: install it (Debian: apt-get install prometheus) or name it with "
            "--prometheus-bin / FLEETPULSE_PROMETHEUS_BIN"
        )
    return found


def rule_files(rules_dir: Path = RULES_DIR) -> list[str]:
    """The rule file globs to load: deploy/prometheus/rules/*.yml if that folder exists."""
    return [str(rules_dir / "*.yml")] if rules_dir.is_dir() else []


def config(
    targets: Mapping[str, Sequence[str]],
    rules: Sequence[str] = (),
    scrape_interval: str = SCRAPE_INTERVAL,
) -> dict[str, Any]:
    """A configuration scraping each scrape job's ``targets`` (HOST:PORT, path /metrics)."""
    scrape_configs = []
    for job, hosts in targets.items():
        if not hosts:
            continue
        entry: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": list(hosts)}]}
        if job in HONOR_LABELS:
            entry["honor_labels"] = True
        scrape_configs.append(entry)
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": list(rules),
        "scrape_configs": scrape_configs,
    }


def write_config(path: Path, cfg: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def argv(binary: str, config_path: Path, storage: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        # a local demo's history: two days is plenty and bounds the data directory
        "--storage.tsdb.retention.time=2d",
    ]
