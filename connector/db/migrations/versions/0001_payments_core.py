"""Merchants, payments, payment operations and the sandbox acquirer's ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connector.db.tables import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("app_key", sa.String(200), nullable=False),
        sa.Column("token_salt", sa.LargeBinary(32), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("token_rotated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("name", name=op.f("uq_merchants_name")),
        sa.UniqueConstraint("app_key", name=op.f("uq_merchants_app_key")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.String(200), nullable=False),
        sa.Column("transaction_id", sa.String(200), nullable=True),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("payment_method", sa.String(100), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("max_value_minor", sa.BigInteger(), nullable=True),
        sa.Column("installments", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("tid", sa.String(64), nullable=False),
        sa.Column("nsu", sa.String(64), nullable=True),
        sa.Column("authorization_id", sa.String(64), nullable=True),
        sa.Column("acquirer", sa.String(50), nullable=False),
        sa.Column("acquirer_code", sa.String(64), nullable=True),
        sa.Column("acquirer_message", sa.String(500), nullable=True),
        sa.Column("delay_to_auto_settle", sa.Integer(), nullable=False),
        sa.Column("delay_to_auto_settle_after_antifraud", sa.Integer(), nullable=False),
        sa.Column("delay_to_cancel", sa.Integer(), nullable=False),
        sa.Column("card_bin", sa.String(8), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("is_test_suite", sa.Boolean(), nullable=False),
        sa.Column("sandbox_mode", sa.Boolean(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("inbound_requests_url", sa.Text(), nullable=True),
        sa.Column("personal_data", sa.LargeBinary(), nullable=True),
        sa.Column("settled_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("cancellation_id", sa.String(64), nullable=True),
        sa.Column("authorizing_since", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payments_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "merchant_id", "payment_id", name=op.f("uq_payments_merchant_id_payment_id")
        ),
        # Defence in depth for the cumulative limits the repositories enforce atomically.
        sa.CheckConstraint("settled_minor >= 0", name=op.f("ck_payments_settled_nonnegative")),
        sa.CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= settled_minor",
            name=op.f("ck_payments_refund_within_settled"),
        ),
    )
    op.create_index(op.f("ix_payments_status"), "payments", ["status"])
    op.create_table(
        "payment_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("payment_pk", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["payment_pk"], ["payments.id"], name=op.f("fk_payment_operations_payment_pk_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_operations")),
        sa.UniqueConstraint(
            "payment_pk",
            "kind",
            "request_id",
            name=op.f("uq_payment_operations_payment_pk_kind_request_id"),
        ),
    )
    op.create_table(
        "sandbox_acquirer_calls",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("decide_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_acquirer_calls")),
    )
    op.create_index(
        op.f("ix_sandbox_acquirer_calls_idempotency_key"),
        "sandbox_acquirer_calls",
        ["idempotency_key"],
    )


def downgrade() -> None:
    op.drop_table("sandbox_acquirer_calls")
    op.drop_table("payment_operations")
    op.drop_index(op.f("ix_payments_status"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("merchants")
