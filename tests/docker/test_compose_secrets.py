"""docker-compose never signs alert deliveries with the public demo secret.

With ``FLEETPULSE_WEBHOOK_SECRET`` empty or unset, either compose refuses to start (the variable
is marked required, ``${VAR:?message}``) or the dispatcher gets an environment in which the
packaged configuration resolves to the demo secret and no allowance: it refuses to start.
Compose's substitution is evaluated here as compose does it, for a given host environment; no
Docker engine is needed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.config import (
    ALLOW_DEMO_SECRET_ENV,
    DEMO_SECRET,
    default_config_path,
    demo_secret_problems,
    load_config,
)

pytestmark = pytest.mark.unit

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "docker-compose.yml"
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_]\w*))")


class Refused(Exception):
    """Compose stops: a required variable is missing."""


def substitute(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution of ``value`` for the host environment ``env``."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name, op, arg = m.group(2) or m.group(5), m.group(3), m.group(4)
            v = env.get(name)
            empty = v is None or (v == "" and op is not None and op.startswith(":"))
            if op in (":-", "-"):
                return arg if empty else str(v)
            if op in (":?", "?") and empty:
                raise Refused(f"{name}: {arg}")
            return v or ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    return value


def dispatcher_env(host_env: dict[str, str]) -> dict[str, str]:
    svc = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["alert-dispatcher"]
    env = substitute(svc.get("environment") or {}, host_env)
    assert isinstance(env, dict), "environment as a mapping"
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@pytest.mark.parametrize("secret", [None, ""])
def test_compose_does_not_sign_with_the_demo_secret(secret: str | None) -> None:
    host = {"FLEETPULSE_GATEWAY_SECRET": "g" * 32}
    if secret is not None:
        host["FLEETPULSE_WEBHOOK_SECRET"] = secret
    try:
        env = dispatcher_env(host)
    except Refused as exc:
        assert "FLEETPULSE_WEBHOOK_SECRET" in str(exc)
        return
    # compose starts it: the dispatcher must then refuse (no allowance, demo secret detected)
    assert env.get(ALLOW_DEMO_SECRET_ENV, "") in ("", "0")
    cfg = load_config(default_config_path(), env=env)
    assert cfg.receivers[0].secret == DEMO_SECRET and demo_secret_problems(cfg)


def test_compose_passes_a_given_secret_through() -> None:
    env = dispatcher_env({"FLEETPULSE_GATEWAY_SECRET": "g", "FLEETPULSE_WEBHOOK_SECRET": "w" * 32})
    assert env["FLEETPULSE_WEBHOOK_SECRET"] == "w" * 32
    assert ALLOW_DEMO_SECRET_ENV not in env
    assert demo_secret_problems(load_config(default_config_path(), env=env)) == []
