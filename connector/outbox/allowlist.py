"""SSRF guard: callbacks go only to hosts the deployment allows."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _matches(host: str, pattern: str) -> bool:
    pattern = pattern.strip().lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host != pattern[2:]
    return host == pattern


def callback_url_allowed(url: str, allowed_hosts: Sequence[str], allow_loopback: bool) -> bool:
    """HTTPS to an allowed host name; plain HTTP only to loopback, and only when allowed."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    if _is_loopback(host):
        return allow_loopback and parts.scheme in ("http", "https")
    if parts.scheme != "https":
        return False
    try:
        ipaddress.ip_address(host)
        return False  # VTEX's callback URLs are host names; an IP literal is never VTEX
    except ValueError:
        pass
    return any(_matches(host, pattern) for pattern in allowed_hosts)
