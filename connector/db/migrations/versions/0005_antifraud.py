"""Anti-fraud: analyses, the subjects velocity rules count by, merchants' rule sets, and hooks in
the outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from connector.db.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUBJECT_KEYS = ("card", "email", "document", "ip", "device")


def upgrade() -> None:
    op.create_table(
        "antifraud_analyses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("transaction_id", sa.String(length=255), nullable=False),
        sa.Column("tid", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=1000), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("analysis_type", sa.String(length=20), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("responses", sa.JSON(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("hook_url", sa.Text(), nullable=True),
        sa.Column("is_test_suite", sa.Boolean(), nullable=False),
        sa.Column("pending_reads", sa.Integer(), nullable=False),
        sa.Column("deadline", UTCDateTime(timezone=True), nullable=True),
        sa.Column("default_decision", sa.String(length=20), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ruleset_version", sa.Integer(), nullable=True),
        *(
            sa.Column(f"{key}_key", sa.LargeBinary(length=32), nullable=True)
            for key in _SUBJECT_KEYS
        ),
        sa.Column("order_data", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('approved', 'denied', 'undefined')",
            name=op.f("ck_antifraud_analyses_status_known"),
        ),
        sa.CheckConstraint(
            "score >= 0 AND score <= 100", name=op.f("ck_antifraud_analyses_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_antifraud_analyses_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_analyses")),
        sa.UniqueConstraint(
            "merchant_id",
            "transaction_id",
            name=op.f("uq_antifraud_analyses_merchant_id_transaction_id"),
        ),
        sa.UniqueConstraint("tid", name=op.f("uq_antifraud_analyses_tid")),
    )
    op.create_index(
        op.f("ix_antifraud_analyses_deadline"), "antifraud_analyses", ["deadline"], unique=False
    )
    for key in _SUBJECT_KEYS:
        op.create_index(
            f"ix_antifraud_analyses_{key}",
            "antifraud_analyses",
            ["merchant_id", f"{key}_key", "created_at"],
            unique=False,
        )
    op.create_table(
        "antifraud_subjects",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_antifraud_subjects_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_subjects")),
        sa.UniqueConstraint(
            "merchant_id",
            "kind",
            "digest",
            name=op.f("uq_antifraud_subjects_merchant_id_kind_digest"),
        ),
    )
    op.create_table(
        "antifraud_rulesets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("loaded_by", sa.String(length=100), nullable=False),
        sa.Column("loaded_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_antifraud_rulesets_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_antifraud_rulesets")),
        sa.UniqueConstraint(
            "merchant_id", "version", name=op.f("uq_antifraud_rulesets_merchant_id_version")
        ),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("analysis_pk", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_outbox_analysis_pk_antifraud_analyses"),
            "antifraud_analyses",
            ["analysis_pk"],
            ["id"],
        )
    op.create_index("uq_outbox_analysis_pk_kind", "outbox", ["analysis_pk", "kind"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_outbox_analysis_pk_kind", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("fk_outbox_analysis_pk_antifraud_analyses"), type_="foreignkey")
        batch.drop_column("analysis_pk")
    op.drop_table("antifraud_rulesets")
    op.drop_table("antifraud_subjects")
    for key in _SUBJECT_KEYS:
        op.drop_index(f"ix_antifraud_analyses_{key}", table_name="antifraud_analyses")
    op.drop_index(op.f("ix_antifraud_analyses_deadline"), table_name="antifraud_analyses")
    op.drop_table("antifraud_analyses")
