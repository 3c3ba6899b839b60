"""Delivers outbox rows: POST the stored payload to the stored URL, exactly as received.

At-least-once: a row is marked delivered only after a 2xx; a dispatcher that dies between claim
and delivery leaves a lease that expires, and the row is claimed again. Failures back off
exponentially with full jitter until the row's deadline, then it becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

import httpx

from connector.db.engine import Database
from connector.db.tables import OutboxMessage, utcnow
from connector.observability.metrics import count_callback_delivery
from connector.outbox.allowlist import callback_url_allowed
from connector.outbox.repository import OutboxRepository
from connector.settings import Settings

log = logging.getLogger(__name__)
BATCH = 50


class Dispatcher:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        http: httpx.AsyncClient,
        rng: random.Random | None = None,
    ) -> None:
        self._db = database
        self._settings = settings
        self._http = http
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        settings = self._settings
        if settings.vtex_app_key and settings.vtex_app_token:
            headers["X-VTEX-API-AppKey"] = settings.vtex_app_key
            headers["X-VTEX-API-AppToken"] = settings.vtex_app_token.get_secret_value()
        return headers

    def backoff(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempts-1))]."""
        ceiling = min(
            self._settings.callback_backoff_max_seconds,
            self._settings.callback_backoff_base_seconds * 2 ** max(attempts - 1, 0),
        )
        return self._rng.uniform(ceiling / 2, ceiling)

    async def dispatch_once(self) -> int:
        """Claim what is due, deliver it concurrently, record every result in one transaction;
        the number of rows handled."""
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.outbox_lease_seconds)
        async with self._db.writer() as session:
            messages = await OutboxRepository(session).claim(now, lease, BATCH)
        if not messages:
            return 0
        errors = await asyncio.gather(*(self._send(message) for message in messages))
        now = utcnow()
        async with self._db.writer() as session:
            repository = OutboxRepository(session)
            for message, error in zip(messages, errors, strict=True):
                await self._record(repository, message, error, now)
        return len(messages)

    async def _send(self, message: OutboxMessage) -> str | None:
        """POST one message; None when delivered, else what went wrong."""
        settings = self._settings
        if not callback_url_allowed(
            message.url, settings.callback_allowed_hosts, settings.callback_allow_loopback
        ):
            return "callback host is not on the allow-list"
        try:
            response = await self._http.post(
                message.url,  # verbatim: its X-VTEX-signature parameter must stay intact
                json=message.payload,
                headers=self._headers(),
                timeout=settings.callback_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"

    async def _record(
        self,
        repository: OutboxRepository,
        message: OutboxMessage,
        error: str | None,
        now: datetime,
    ) -> None:
        if error is None:
            await repository.delivered(message, now)
            count_callback_delivery(message.kind, "delivered")
            log.info("callback %s delivered (attempt %d)", message.id, message.attempts)
            return
        next_try = now + timedelta(seconds=self.backoff(message.attempts))
        retry_at: datetime | None = next_try if next_try <= message.deadline else None
        count_callback_delivery(message.kind, "dead" if retry_at is None else "retry")
        if retry_at is None:
            log.error(
                "callback %s is a dead letter after %d attempts: %s",
                message.id,
                message.attempts,
                error,
            )
        else:
            log.warning(
                "callback %s failed (attempt %d): %s; retry at %s",
                message.id,
                message.attempts,
                error,
                retry_at.isoformat(),
            )
        await repository.failed(message, error, retry_at)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                handled = await self.dispatch_once()
            except Exception:  # a database hiccup must not kill the loop
                log.exception("outbox dispatch failed")
                handled = 0
            if not handled:
                try:
                    await asyncio.wait_for(stop.wait(), self._settings.outbox_poll_seconds)
                except TimeoutError:
                    pass
