"""The queries behind the database gauges of `/metrics`, read at every scrape.

Each one reads only rows that are waiting for something (undecided payments, undelivered
callbacks, open holds, reviews), through an index on the column that says so, so a scrape costs
the same on a table of a thousand rows or of a hundred million: payments by `status`
(`ix_payments_status`), the outbox by `status` (`ix_outbox_status`), gift card holds by
`hold_expires_at` (cleared once a hold is settled or released) and anti-fraud analyses by
`deadline` (cleared once decided or stopped). Counting every payment by every status would scan
the whole table at every scrape, so decided payments are counted as they are decided instead
(`connector_acquirer_request_duration_seconds_count` by outcome).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from connector.db.tables import AntifraudAnalysis, GiftCardTransaction, OutboxMessage, Payment

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    status: str
    kind: str
    count: int
    oldest_created_at: datetime | None


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def payments_by_status(self, statuses: Collection[str]) -> dict[str, int]:
        rows = await self._session.execute(
            select(Payment.status, func.count())
            .where(Payment.status.in_(statuses))
            .group_by(Payment.status)
        )
        return {status: count for status, count in rows.tuples()}

    async def outbox_backlog(self, statuses: Collection[str]) -> list[OutboxBacklog]:
        """Messages in `statuses` (pending, dead) by status and kind, with the oldest's
        creation time."""
        rows = await self._session.execute(
            select(
                OutboxMessage.status,
                OutboxMessage.kind,
                func.count(),
                func.min(OutboxMessage.created_at),
            )
            .where(OutboxMessage.status.in_(statuses))
            .group_by(OutboxMessage.status, OutboxMessage.kind)
        )
        return [OutboxBacklog(*row) for row in rows.tuples()]

    async def open_giftcard_holds(self) -> int:
        count = await self._session.scalar(
            select(func.count()).where(GiftCardTransaction.hold_expires_at.is_not(None))
        )
        return int(count or 0)

    async def antifraud_reviews_waiting(self) -> int:
        """Analyses in the manual review queue (as `connector reviews list` shows them)."""
        count = await self._session.scalar(
            select(func.count()).where(
                # "Has a deadline", as a range: SQLite, without statistics, scans the table for
                # `IS NOT NULL` next to other conditions, and walks the deadline index for this.
                AntifraudAnalysis.deadline > _EPOCH,
                AntifraudAnalysis.analysis_type == "manual",
                AntifraudAnalysis.status == "undefined",
                AntifraudAnalysis.stopped_at.is_(None),
            )
        )
        return int(count or 0)
