"""`up`'s Redis password: generated once per data directory, readable by its owner only, never
on a command line or in a printed URL; the append-only file is on wherever Redis persists."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fleetpulse.config import UpSettings
from fleetpulse.services.redis_server import RedisServer, redis_password
from fleetpulse.supervisor import write_state
from udfs.redis_url import redacted

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_password_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    first = redis_password(tmp_path)
    assert len(first) >= 32
    assert mode(tmp_path / "redis.secret") == 0o600
    assert redis_password(tmp_path) == first
    assert redis_password(tmp_path / "other") != first


def test_the_password_is_in_the_url_but_not_on_the_command_line(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, 6390, password="s3cret")
    argv = server.argv()
    assert not any("s3cret" in a for a in argv)
    assert argv[1] == str(tmp_path / "auth.conf")  # the config file holds requirepass
    assert server.url == "redis://:s3cret@127.0.0.1:6390/0"
    assert "s3cret" not in server.display_url
    settings = UpSettings(data_dir=tmp_path, redis_port=6390, redis_password="a/b@c")
    assert settings.redis_url == "redis://:a%2Fb%40c@127.0.0.1:6390/0"


def test_append_only_file_everysec_when_persisting(tmp_path: Path) -> None:
    argv = " ".join(RedisServer(tmp_path, 6390).argv())
    assert "--appendonly yes --appendfsync everysec" in argv
    assert "--appendonly no" in " ".join(RedisServer(tmp_path, 6390, persist=False).argv())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://app:p%40w@redis.example:6380/1", "rediss://app:***@redis.example:6380/1"),
        ("unix:///run/redis.sock?password=pw&db=2", "unix:///run/redis.sock?password=***&db=2"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_the_state_file_holding_the_url_is_private(tmp_path: Path) -> None:
    path = tmp_path / "run" / "up.json"
    write_state(path, {"redis_url": "redis://:pw@127.0.0.1:1/0"})
    assert mode(path) == 0o600
    assert json.loads(path.read_text())["redis_url"] == "redis://:pw@127.0.0.1:1/0"
