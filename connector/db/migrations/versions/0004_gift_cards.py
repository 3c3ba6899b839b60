"""Gift cards: cards, their transactions, settlements and cancellations, and the ledger.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connector.db.tables import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "giftcards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("card_id", sa.String(length=40), nullable=False),
        sa.Column("redemption_token", sa.String(length=64), nullable=False),
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("code_last4", sa.String(length=4), nullable=False),
        sa.Column("relation_name", sa.String(length=200), nullable=False),
        sa.Column("caption", sa.String(length=200), nullable=True),
        sa.Column("owner_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("owner", sa.LargeBinary(), nullable=True),
        sa.Column("restricted_to_owner", sa.Boolean(), nullable=False),
        sa.Column("multiple_redemptions", sa.Boolean(), nullable=False),
        sa.Column("multiple_credits", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("emission_date", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expiring_date", UTCDateTime(timezone=True), nullable=True),
        sa.Column("available_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'blocked')", name=op.f("ck_giftcards_status_known")
        ),
        sa.CheckConstraint("available_minor >= 0", name=op.f("ck_giftcards_available_nonnegative")),
        sa.CheckConstraint("held_minor >= 0", name=op.f("ck_giftcards_held_nonnegative")),
        sa.CheckConstraint(
            "multiple_credits OR credits <= 1", name=op.f("ck_giftcards_single_credit")
        ),
        sa.CheckConstraint(
            "multiple_redemptions OR redemptions <= 1", name=op.f("ck_giftcards_single_redemption")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_giftcards_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giftcards")),
        sa.UniqueConstraint("card_id", name=op.f("uq_giftcards_card_id")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_giftcards_code_digest")),
    )
    with op.batch_alter_table("giftcards", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giftcards_owner_digest"), ["owner_digest"], unique=False
        )

    op.create_table(
        "giftcard_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("card_pk", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("settled_minor", sa.BigInteger(), nullable=False),
        sa.Column("released_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("hold_expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount_minor > 0", name=op.f("ck_giftcard_transactions_amount_positive")
        ),
        sa.CheckConstraint(
            "refunded_minor <= settled_minor",
            name=op.f("ck_giftcard_transactions_refund_within_settled"),
        ),
        sa.CheckConstraint(
            "settled_minor + released_minor <= amount_minor",
            name=op.f("ck_giftcard_transactions_within_amount"),
        ),
        sa.CheckConstraint(
            "settled_minor >= 0 AND released_minor >= 0 AND refunded_minor >= 0",
            name=op.f("ck_giftcard_transactions_totals_nonnegative"),
        ),
        sa.ForeignKeyConstraint(
            ["card_pk"], ["giftcards.id"], name=op.f("fk_giftcard_transactions_card_pk_giftcards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giftcard_transactions")),
        sa.UniqueConstraint(
            "card_pk", "request_id", name=op.f("uq_giftcard_transactions_card_pk_request_id")
        ),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_giftcard_transactions_transaction_id")),
    )
    with op.batch_alter_table("giftcard_transactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giftcard_transactions_card_pk"), ["card_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_giftcard_transactions_hold_expires_at"),
            ["hold_expires_at"],
            unique=False,
        )

    op.create_table(
        "giftcard_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("card_pk", sa.Uuid(), nullable=False),
        sa.Column("transaction_pk", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("available_delta", sa.BigInteger(), nullable=False),
        sa.Column("held_delta", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_pk"], ["giftcards.id"], name=op.f("fk_giftcard_entries_card_pk_giftcards")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_pk"],
            ["giftcard_transactions.id"],
            name=op.f("fk_giftcard_entries_transaction_pk_giftcard_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giftcard_entries")),
    )
    with op.batch_alter_table("giftcard_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_giftcard_entries_card_pk"), ["card_pk"], unique=False)

    op.create_table(
        "giftcard_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("oid", sa.String(length=40), nullable=False),
        sa.Column("transaction_pk", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('settlement', 'cancellation')", name=op.f("ck_giftcard_operations_kind_known")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_giftcard_operations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["transaction_pk"],
            ["giftcard_transactions.id"],
            name=op.f("fk_giftcard_operations_transaction_pk_giftcard_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giftcard_operations")),
        sa.UniqueConstraint("oid", name=op.f("uq_giftcard_operations_oid")),
        sa.UniqueConstraint(
            "transaction_pk",
            "kind",
            "request_id",
            name=op.f("uq_giftcard_operations_transaction_pk_kind_request_id"),
        ),
    )
    with op.batch_alter_table("giftcard_operations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giftcard_operations_transaction_pk"), ["transaction_pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("giftcard_operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giftcard_operations_transaction_pk"))

    op.drop_table("giftcard_operations")
    with op.batch_alter_table("giftcard_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giftcard_entries_card_pk"))

    op.drop_table("giftcard_entries")
    with op.batch_alter_table("giftcard_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giftcard_transactions_hold_expires_at"))
        batch_op.drop_index(batch_op.f("ix_giftcard_transactions_card_pk"))

    op.drop_table("giftcard_transactions")
    with op.batch_alter_table("giftcards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_giftcards_owner_digest"))

    op.drop_table("giftcards")
