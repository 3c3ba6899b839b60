"""The SQL of anti-fraud analyses, the subjects velocity rules count by, and rule sets.

Decisions are conditional UPDATEs (`WHERE status = 'undefined' AND stopped_at IS NULL`), so an
operator, the deadline worker and a DELETE racing on one analysis cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CursorResult,
    Integer,
    Select,
    String,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from connector.db.tables import AntifraudAnalysis, AntifraudRuleSet, AntifraudSubject

UNDEFINED = "undefined"
SEEN = -1  # marks the "any earlier analysis?" rows of `history`


def _changed(result: object) -> bool:
    assert isinstance(result, CursorResult)
    return bool(result.rowcount)


def subject_column(kind: str) -> InstrumentedAttribute[bytes | None]:
    column: InstrumentedAttribute[bytes | None] = getattr(AntifraudAnalysis, f"{kind}_key")
    return column


class AntifraudRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # ------------------------------------------------------------------------- analyses

    async def analysis(
        self, merchant_id: uuid.UUID, transaction_id: str
    ) -> AntifraudAnalysis | None:
        return await self._session.scalar(
            select(AntifraudAnalysis).where(
                AntifraudAnalysis.merchant_id == merchant_id,
                AntifraudAnalysis.transaction_id == transaction_id,
            )
        )

    async def test_suite_analysis(self, transaction_id: str) -> AntifraudAnalysis | None:
        """A test-suite analysis by VTEX id alone: the suite reads statuses without credentials."""
        return await self._session.scalar(
            select(AntifraudAnalysis)
            .where(
                AntifraudAnalysis.transaction_id == transaction_id,
                AntifraudAnalysis.is_test_suite.is_(True),
            )
            .order_by(AntifraudAnalysis.created_at.desc())
            .limit(1)
        )

    async def by_tid(self, tid: str) -> AntifraudAnalysis | None:
        return await self._session.scalar(
            select(AntifraudAnalysis).where(AntifraudAnalysis.tid == tid)
        )

    async def add(self, analysis: AntifraudAnalysis) -> None:
        self._session.add(analysis)
        await self._session.flush()

    async def refresh(self, analysis: AntifraudAnalysis) -> None:
        await self._session.refresh(analysis)

    async def consume_pending_read(self, analysis_pk: uuid.UUID) -> bool:
        """One of the status reads a test-suite analysis answers `undefined` before its decision
        shows; False when none is left."""
        return _changed(
            await self._session.execute(
                update(AntifraudAnalysis)
                .where(AntifraudAnalysis.id == analysis_pk, AntifraudAnalysis.pending_reads > 0)
                .values(pending_reads=AntifraudAnalysis.pending_reads - 1)
            )
        )

    async def decide(
        self,
        analysis_pk: uuid.UUID,
        status: str,
        *,
        decided_by: str,
        reason: str | None,
        now: datetime,
        manual_only: bool = False,
    ) -> bool:
        """Turn an `undefined`, not stopped analysis into `status`; False if it was not one."""
        query = update(AntifraudAnalysis).where(
            AntifraudAnalysis.id == analysis_pk,
            AntifraudAnalysis.status == UNDEFINED,
            AntifraudAnalysis.stopped_at.is_(None),
        )
        if manual_only:
            query = query.where(AntifraudAnalysis.analysis_type == "manual")
        result = await self._session.execute(
            query.values(
                status=status,
                decided_by=decided_by,
                decision_reason=reason,
                decided_at=now,
                pending_reads=0,
                deadline=None,
                updated_at=now,
            )
        )
        return _changed(result)

    async def stop(self, analysis_pk: uuid.UUID, now: datetime) -> bool:
        return _changed(
            await self._session.execute(
                update(AntifraudAnalysis)
                .where(AntifraudAnalysis.id == analysis_pk, AntifraudAnalysis.stopped_at.is_(None))
                .values(stopped_at=now, deadline=None, updated_at=now)
            )
        )

    async def due(self, now: datetime, limit: int) -> list[AntifraudAnalysis]:
        """Undecided analyses whose deadline has passed (oldest first)."""
        return list(
            await self._session.scalars(
                select(AntifraudAnalysis)
                .where(
                    AntifraudAnalysis.deadline <= now,
                    AntifraudAnalysis.status == UNDEFINED,
                    AntifraudAnalysis.stopped_at.is_(None),
                )
                .order_by(AntifraudAnalysis.deadline)
                .limit(limit)
            )
        )

    async def review_queue(
        self, merchant_id: uuid.UUID | None, limit: int
    ) -> list[AntifraudAnalysis]:
        """Analyses waiting for an operator, oldest first."""
        query = select(AntifraudAnalysis).where(
            AntifraudAnalysis.analysis_type == "manual",
            AntifraudAnalysis.status == UNDEFINED,
            AntifraudAnalysis.stopped_at.is_(None),
            AntifraudAnalysis.deadline.is_not(None),
        )
        if merchant_id is not None:
            query = query.where(AntifraudAnalysis.merchant_id == merchant_id)
        return list(
            await self._session.scalars(query.order_by(AntifraudAnalysis.deadline).limit(limit))
        )

    async def order_data_batch(self, after: uuid.UUID, limit: int) -> list[tuple[uuid.UUID, bytes]]:
        """Encrypted orders in primary-key order, for key rotation."""
        rows = await self._session.execute(
            select(AntifraudAnalysis.id, AntifraudAnalysis.order_data)
            .where(AntifraudAnalysis.id > after, AntifraudAnalysis.order_data.is_not(None))
            .order_by(AntifraudAnalysis.id)
            .limit(limit)
        )
        return [(pk, blob) for pk, blob in rows if blob is not None]

    async def set_order_data(self, analysis_pk: uuid.UUID, blob: bytes) -> None:
        await self._session.execute(
            update(AntifraudAnalysis)
            .where(AntifraudAnalysis.id == analysis_pk)
            .values(order_data=blob)
        )

    # ------------------------------------------------------------------------- velocity

    async def lock_subjects(
        self, merchant_id: uuid.UUID, subjects: Sequence[tuple[str, bytes]], now: datetime
    ) -> None:
        """Upsert the order's subjects. The update takes each row's lock until commit, so
        analyses sharing a subject count it one at a time, on every process; a fixed order
        (sorted) keeps two analyses from waiting on each other."""
        if not subjects:
            return
        rows = [
            {"merchant_id": merchant_id, "kind": kind, "digest": digest, "last_seen_at": now}
            for kind, digest in sorted(subjects)
        ]
        dialect = self._session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(AntifraudSubject).values(rows)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["merchant_id", "kind", "digest"],
                set_={"last_seen_at": statement.excluded.last_seen_at},
            )
        )

    async def history(
        self,
        merchant_id: uuid.UUID,
        windows: Sequence[tuple[str, bytes, int, datetime]],
        identities: Sequence[tuple[str, bytes]],
    ) -> tuple[dict[tuple[str, int], tuple[int, int]], set[str]]:
        """In one round trip: for each (subject kind, digest, window seconds, since), the count
        and total minor units of this merchant's analyses of that subject since then; and which
        identities (kind, digest) have any analysis at all. Each part is an index range scan."""
        parts: list[Select[str, int, int, int]] = []
        for kind, digest, seconds, since in windows:
            parts.append(
                select(
                    literal(kind, String),
                    literal(seconds, Integer),
                    func.count(),
                    func.coalesce(func.sum(AntifraudAnalysis.amount_minor), 0),
                ).where(
                    AntifraudAnalysis.merchant_id == merchant_id,
                    subject_column(kind) == digest,
                    AntifraudAnalysis.created_at >= since,
                )
            )
        for kind, digest in identities:
            earlier = (
                select(AntifraudAnalysis.id)
                .where(
                    AntifraudAnalysis.merchant_id == merchant_id,
                    subject_column(kind) == digest,
                )
                .limit(1)
                .subquery()
            )
            parts.append(
                select(
                    literal(kind, String), literal(SEEN, Integer), func.count(), literal(0, Integer)
                ).select_from(earlier)
            )
        if not parts:
            return {}, set()
        statement = parts[0] if len(parts) == 1 else union_all(*parts)
        tallies: dict[tuple[str, int], tuple[int, int]] = {}
        returning: set[str] = set()
        rows: list[Any] = list(await self._session.execute(statement))
        for kind, seconds, count, amount in rows:
            if seconds == SEEN:
                if count:
                    returning.add(kind)
            else:
                tallies[(kind, int(seconds))] = (int(count), int(amount))
        return tallies, returning

    # ------------------------------------------------------------------------- rule sets

    async def latest_ruleset(self, merchant_id: uuid.UUID) -> AntifraudRuleSet | None:
        return await self._session.scalar(
            select(AntifraudRuleSet)
            .where(AntifraudRuleSet.merchant_id == merchant_id)
            .order_by(AntifraudRuleSet.version.desc())
            .limit(1)
        )

    async def add_ruleset(
        self, merchant_id: uuid.UUID, source: str, loaded_by: str, now: datetime
    ) -> AntifraudRuleSet:
        """The next version; two loads racing on one merchant collide on the unique key."""
        latest = await self._session.scalar(
            select(func.max(AntifraudRuleSet.version)).where(
                AntifraudRuleSet.merchant_id == merchant_id
            )
        )
        ruleset = AntifraudRuleSet(
            merchant_id=merchant_id,
            version=(latest or 0) + 1,
            source=source,
            loaded_by=loaded_by,
            loaded_at=now,
        )
        self._session.add(ruleset)
        await self._session.flush()
        return ruleset
