"""`up`'s webhook settings for the dispatcher and its local receiver: one secret per data
directory (never the public demo secret), the receiver's URL unless the user chose another."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetpulse.config import UpSettings
from fleetpulse.supervisor import Supervisor, webhook_secret

pytestmark = pytest.mark.unit


def test_secret_is_created_once_private_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETPULSE_WEBHOOK_SECRET", raising=False)
    first = webhook_secret(tmp_path)
    assert len(first) == 64 and first != "fleetpulse-dev-secret"
    assert (tmp_path / "webhook.secret").stat().st_mode & 0o777 == 0o600
    assert webhook_secret(tmp_path) == first
    monkeypatch.setenv("FLEETPULSE_WEBHOOK_SECRET", "chosen")
    assert webhook_secret(tmp_path) == "chosen"


def test_dispatcher_and_receiver_get_the_receivers_url_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETPULSE_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("FLEETPULSE_WEBHOOK_SECRET", raising=False)
    sup = Supervisor(UpSettings(data_dir=tmp_path, receiver_port=19099))
    env = sup.webhook_env()
    assert env["FLEETPULSE_WEBHOOK_URL"] == "http://127.0.0.1:19099/alerts"
    assert env["FLEETPULSE_WEBHOOK_SECRET"] == webhook_secret(tmp_path)
    assert sup.settings.received_file == tmp_path / "receiver" / "alerts.jsonl"
    monkeypatch.setenv("FLEETPULSE_WEBHOOK_URL", "https://hooks.example.com/x")
    assert "FLEETPULSE_WEBHOOK_URL" not in sup.webhook_env()  # the dispatcher reads the user's
