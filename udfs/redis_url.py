"""Redis URLs as they may be shown: the password masked, so no log or message leaks it.

Clients take ``redis://[[user]:password@]host:port/db`` or ``rediss://`` (TLS) URLs
(``redis.Redis.from_url``); anything printed or logged passes through :func:`redacted`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; anything else unchanged."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: show none of it
        return MASK
    query_has_password = "password=" in parts.query
    if password is None and not query_has_password:
        return url
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    if query_has_password:
        query = "&".join(
            f"password={MASK}" if p.startswith("password=") else p for p in query.split("&")
        )
    tail = (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return f"{parts.scheme}://{netloc}{parts.path}{tail}"


def cluster_enabled(info: Mapping[str, Any]) -> bool:
    """Whether a node's ``INFO cluster`` reply says it is in a Redis Cluster."""
    return str(info.get("cluster_enabled", "0")) == "1"
