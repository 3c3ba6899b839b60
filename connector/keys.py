"""Key rotation for personal data: re-encrypt every row under the primary key, in batches."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from connector.antifraud.repository import AntifraudRepository
from connector.db.engine import Database
from connector.giftcards.repository import GiftCardRepository
from connector.payments.repository import PaymentRepository
from connector.security import FieldCipher

BATCH = 500

Batch = Callable[[AsyncSession, uuid.UUID], Awaitable[list[tuple[uuid.UUID, bytes]]]]
Store = Callable[[AsyncSession, uuid.UUID, bytes], Awaitable[None]]

# Every encrypted column: payments' buyer data, gift card owners, anti-fraud orders.
_SOURCES: list[tuple[Batch, Store]] = [
    (
        lambda session, after: PaymentRepository(session).personal_data_batch(after, BATCH),
        lambda session, pk, blob: PaymentRepository(session).set_personal_data(pk, blob),
    ),
    (
        lambda session, after: GiftCardRepository(session).owner_batch(after, BATCH),
        lambda session, pk, blob: GiftCardRepository(session).set_owner(pk, blob),
    ),
    (
        lambda session, after: AntifraudRepository(session).order_data_batch(after, BATCH),
        lambda session, pk, blob: AntifraudRepository(session).set_order_data(pk, blob),
    ),
]


async def reencrypt_personal_data(database: Database, cipher: FieldCipher) -> int:
    """Each batch commits on its own, so an interrupted rotation resumes where it stopped."""
    done = 0
    for batch, store in _SOURCES:
        after = uuid.UUID(int=0)
        while True:
            async with database.writer() as session:
                rows = await batch(session, after)
                for pk, blob in rows:
                    await store(session, pk, cipher.rotate(blob))
            if not rows:
                break
            done += len(rows)
            after = rows[-1][0]
    return done
