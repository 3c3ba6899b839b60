"""Key rotation for personal data: re-encrypt every row under the primary key, in batches."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from connector.db.engine import Database
from connector.db.tables import Payment
from connector.security import FieldCipher

BATCH = 500


async def reencrypt_personal_data(database: Database, cipher: FieldCipher) -> int:
    """Each batch commits on its own, so an interrupted rotation resumes where it stopped."""
    done, after = 0, uuid.UUID(int=0)
    while True:
        async with database.writer() as session:
            rows = (await session.execute(
                select(Payment.id, Payment.personal_data)
                .where(Payment.id > after, Payment.personal_data.is_not(None))
                .order_by(Payment.id)
                .limit(BATCH)
            )).all()
            for pk, blob in rows:
                assert blob is not None
                await session.execute(
                    update(Payment).where(Payment.id == pk)
                    .values(personal_data=cipher.rotate(blob))
                )
        if not rows:
            return done
        done += len(rows)
        after = rows[-1][0]
