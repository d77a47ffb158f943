"""redis-server from Debian's package, on loopback, with its files in the data directory.

With ``persist`` (what `up` runs) Redis keeps an append-only file fsynced every second besides
its snapshots: a ``kill -9`` loses nothing Redis had acknowledged (its write reaches the file
before the reply), a machine crash at most about a second, and the jobs' absolute re-assertion
(docs/delay.md "Refresh and anti-entropy") restores what was lost. With a ``password`` Redis
requires it; it goes to redis-server in a 0600 configuration file, never on the command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

from fleetpulse import PlatformError
from fleetpulse.services.process import ManagedProcess
from fleetpulse.waiting import check_port_free, wait_until
from udfs.redis_url import redacted

PASSWORD_FILE = "redis.secret"
AUTH_CONF = "auth.conf"


def redis_password(data_dir: Path) -> str:
    """The Redis password of this data directory (``<data>/redis.secret``), created once
    with mode 0600 like the gateway's secret, and the same on every later `up`."""
    path = data_dir / PASSWORD_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created 0600, never readable by others
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(24).hex())
    password = path.read_text().strip()
    if not password:
        raise PlatformError(f"{path} is empty: delete it and `up` creates a new password")
    return password


def write_private(path: Path, text: str) -> None:
    """``text`` into ``path``, readable by its owner only (also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass(frozen=True)
class RedisTls:
    """PEM files of a TLS-only Redis (clients connect with ``rediss://``); clients are not
    asked for certificates, they trust ``ca_file``."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    persist: bool = True
    password: str = ""
    tls: RedisTls | None = None

    @property
    def url(self) -> str:
        """What clients connect with (the password included: never print it, see
        :attr:`display_url`)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        query = urlencode({"ssl_ca_certs": str(self.tls.ca_file)})
        return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"

    @property
    def display_url(self) -> str:
        return redacted(self.url)

    def argv(self, from_snapshot: bool = False) -> list[str]:
        """``from_snapshot``: start without the append-only file, to load a snapshot that an
        earlier version (snapshots only) left; :meth:`start` then turns the file on."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise PlatformError(
                "redis-server not found: run ./dev.sh setup (installs Debian's package)"
            )
        argv = [exe]
        if self.password:  # the configuration file comes first, the flags override it
            argv.append(str(self.data_dir / AUTH_CONF))
        if self.tls is None:
            argv += ["--port", str(self.port)]
        else:
            argv += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls.cert_file),
                "--tls-key-file",
                str(self.tls.key_file),
                "--tls-ca-cert-file",
                str(self.tls.ca_file),
                "--tls-auth-clients",
                "no",
            ]
        argv += [
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        # The AOF and snapshots keep the live picture across a restart; tests run without them.
        if self.persist:
            aof = "no" if from_snapshot else "yes"
            argv += ["--appendonly", aof, "--appendfsync", "everysec", "--save", "60 1000"]
        else:
            argv += ["--appendonly", "no", "--save", ""]
        return argv

    def start(self, log_path: Path, timeout_s: float = 30.0) -> ManagedProcess:
        check_port_free(self.port, "Redis")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.password:
            write_private(self.data_dir / AUTH_CONF, f'requirepass "{self.password}"\n')
        # Redis 7 given an append-only file to start with ignores dump.rdb: load the snapshot,
        # then switch the file on at run time (Redis writes it from memory; its documented way)
        from_snapshot = (
            self.persist
            and (self.data_dir / "dump.rdb").exists()
            and not (self.data_dir / "appendonlydir").exists()
        )
        proc = ManagedProcess("redis", self.argv(from_snapshot), log_path).start()

        def ready() -> bool:
            import redis

            if not proc.alive():
                raise PlatformError(f"redis-server exited during start-up:\n{proc.log_tail()}")
            client = redis.Redis.from_url(self.url, socket_timeout=1)
            try:
                return bool(client.ping())
            except redis.BusyLoadingError:  # replaying its files: not ready yet
                return False
            finally:
                client.close()

        try:
            wait_until(ready, timeout_s, f"Redis on port {self.port}")
            if from_snapshot:
                self._switch_on_aof(timeout_s)
        except Exception:
            proc.stop()
            raise
        return proc

    def _switch_on_aof(self, timeout_s: float) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=timeout_s)
        try:
            client.config_set("appendonly", "yes")

            def written() -> bool:
                info = cast(dict[str, Any], client.info("persistence"))
                return bool(
                    info["aof_enabled"]
                    and not info["aof_rewrite_in_progress"]
                    and not info["aof_rewrite_scheduled"]
                )

            wait_until(written, timeout_s, "Redis to write its append-only file")
        finally:
            client.close()
