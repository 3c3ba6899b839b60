"""Key rotation for personal data: re-encrypt every row under the primary key, in batches."""

from __future__ import annotations

import uuid

from connector.db.engine import Database
from connector.payments.repository import PaymentRepository
from connector.security import FieldCipher

BATCH = 500


async def reencrypt_personal_data(database: Database, cipher: FieldCipher) -> int:
    """Each batch commits on its own, so an interrupted rotation resumes where it stopped."""
    done, after = 0, uuid.UUID(int=0)
    while True:
        async with database.writer() as session:
            repository = PaymentRepository(session)
            rows = await repository.personal_data_batch(after, BATCH)
            for pk, blob in rows:
                await repository.set_personal_data(pk, cipher.rotate(blob))
        if not rows:
            return done
        done += len(rows)
        after = rows[-1][0]
