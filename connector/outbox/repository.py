"""Every query on the outbox. Claims are leases: a crashed dispatcher's rows come back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from connector.db.tables import OutboxMessage

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def enqueue(
        self,
        *,
        kind: str,
        url: str,
        payload: dict[str, Any],
        available_at: datetime,
        deadline: datetime,
        payment_pk: uuid.UUID | None = None,
        analysis_pk: uuid.UUID | None = None,
    ) -> None:
        """One message about a payment (a callback) or an anti-fraud analysis (a hook)."""
        assert payment_pk is None or analysis_pk is None, "a message is about one thing"
        self._session.add(
            OutboxMessage(
                id=uuid.uuid4(),
                kind=kind,
                payment_pk=payment_pk,
                analysis_pk=analysis_pk,
                url=url,
                payload=payload,
                status=PENDING,
                attempts=0,
                available_at=available_at,
                deadline=deadline,
                created_at=available_at,
            )
        )
        await self._session.flush()

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxMessage]:
        """Due rows, leased to the caller. `FOR UPDATE SKIP LOCKED` on PostgreSQL lets many
        dispatchers claim side by side; on SQLite the claiming transaction holds the write lock."""
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == PENDING,
                OutboxMessage.available_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.available_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        messages = list(await self._session.scalars(query))
        for message in messages:
            message.lease_until = lease_until
            message.lease_token = uuid.uuid4()
            message.attempts += 1
        await self._session.flush()
        return messages

    async def _finish(self, message: OutboxMessage, **values: Any) -> bool:
        result = await self._session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.lease_token == message.lease_token)
            .values(lease_until=None, lease_token=None, **values)
        )
        assert isinstance(result, CursorResult)
        return bool(result.rowcount)

    async def delivered(self, message: OutboxMessage, now: datetime) -> bool:
        return await self._finish(message, status=DELIVERED, delivered_at=now, last_error=None)

    async def failed(self, message: OutboxMessage, error: str, retry_at: datetime | None) -> bool:
        """Retry at `retry_at`, or become a dead letter when there is none."""
        if retry_at is None:
            return await self._finish(message, status=DEAD, last_error=error[:500])
        return await self._finish(message, available_at=retry_at, last_error=error[:500])

    async def messages(self, status: str | None, limit: int) -> list[OutboxMessage]:
        query = select(OutboxMessage).order_by(OutboxMessage.created_at).limit(limit)
        if status:
            query = query.where(OutboxMessage.status == status)
        return list(await self._session.scalars(query))

    async def retry(self, ids: list[uuid.UUID] | None, now: datetime, deadline: datetime) -> int:
        """Put dead letters (all, or those named) back in the queue."""
        query = update(OutboxMessage).where(OutboxMessage.status == DEAD)
        if ids is not None:
            query = query.where(OutboxMessage.id.in_(ids))
        result = await self._session.execute(
            query.values(
                status=PENDING,
                available_at=now,
                deadline=deadline,
                lease_until=None,
                lease_token=None,
            )
        )
        assert isinstance(result, CursorResult)
        return int(result.rowcount)
