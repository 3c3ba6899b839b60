"""Tables. Money is integer minor units; timestamps are timezone-aware UTC.

Every invariant that must hold under concurrency is a constraint here or a conditional update in
a repository, never only a Python check.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite forgets time zones; this gives every value back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    app_key: Mapped[str] = mapped_column(String(200), unique=True)
    token_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    token_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Payment(Base):
    """One VTEX payment, unique per merchant and `paymentId`: the one-authorization guard."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("merchant_id", "payment_id"),
        CheckConstraint("settled_minor >= 0", name="settled_nonnegative"),
        CheckConstraint(
            "refunded_minor >= 0 AND refunded_minor <= settled_minor",
            name="refund_within_settled",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[str] = mapped_column(String(200))
    transaction_id: Mapped[str | None] = mapped_column(String(200))
    order_id: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(200))
    payment_method: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    max_value_minor: Mapped[int | None] = mapped_column(BigInteger)
    installments: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True)
    tid: Mapped[str] = mapped_column(String(64))
    nsu: Mapped[str | None] = mapped_column(String(64))
    authorization_id: Mapped[str | None] = mapped_column(String(64))
    acquirer: Mapped[str] = mapped_column(String(50))
    acquirer_code: Mapped[str | None] = mapped_column(String(64))
    acquirer_message: Mapped[str | None] = mapped_column(String(500))
    delay_to_auto_settle: Mapped[int] = mapped_column(Integer)
    delay_to_auto_settle_after_antifraud: Mapped[int] = mapped_column(Integer)
    delay_to_cancel: Mapped[int] = mapped_column(Integer)
    card_bin: Mapped[str | None] = mapped_column(String(8))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    is_test_suite: Mapped[bool] = mapped_column(Boolean, default=False)
    sandbox_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    callback_url: Mapped[str | None] = mapped_column(Text)
    return_url: Mapped[str | None] = mapped_column(Text)
    inbound_requests_url: Mapped[str | None] = mapped_column(Text)
    # Buyer name, email, document, phone, addresses, IP, merchant settings: Fernet-encrypted JSON.
    personal_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    settled_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    cancellation_id: Mapped[str | None] = mapped_column(String(64))
    # When the current authorization attempt started; a stale value lets a retry take over.
    authorizing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Flow-specific answer fields (paymentUrl, bank invoice numbers, paymentAppData).
    instrument: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # When the reconciler may next ask the acquirer about this pending payment (its lease).
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PaymentOperation(Base):
    """A settlement, refund or cancellation, unique per payment, kind and VTEX `requestId`."""

    __tablename__ = "payment_operations"
    __table_args__ = (UniqueConstraint("payment_pk", "kind", "request_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    payment_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SandboxAcquirerCall(Base):
    """Every call the built-in sandbox acquirer received: its ledger and its audit trail."""

    __tablename__ = "sandbox_acquirer_calls"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    operation: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(300), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(64))
    decide_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """An outbound call (a payment callback or an anti-fraud hook), written in the transaction of
    the state change that causes it and delivered afterwards by a dispatcher. One per payment (or
    analysis) and kind: a decision is announced once."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("payment_pk", "kind"),
        Index("uq_outbox_analysis_pk_kind", "analysis_pk", "kind", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(30))
    payment_pk: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payments.id"))
    analysis_pk: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("antifraud_analyses.id"))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ----------------------------------------------------------------------------- gift cards
#
# A card's money lives in two running totals, `available_minor` (what it can pay) and
# `held_minor` (reserved by Debit transactions not yet settled or released). Each change to them is
# written in the same database transaction as an entry of `giftcard_entries` carrying the same
# deltas, so both totals always equal the sums of the card's entries (the ledger); the totals exist
# so that a debit is one conditional UPDATE that a CHECK forbids to go below zero.


class GiftCard(Base):
    __tablename__ = "giftcards"
    __table_args__ = (
        CheckConstraint("available_minor >= 0", name="available_nonnegative"),
        CheckConstraint("held_minor >= 0", name="held_nonnegative"),
        CheckConstraint("status IN ('active', 'blocked')", name="status_known"),
        CheckConstraint("multiple_redemptions OR redemptions <= 1", name="single_redemption"),
        CheckConstraint("multiple_credits OR credits <= 1", name="single_credit"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Deliberately not indexed: SQLite, which keeps no statistics, would pick such an index for
    # `_search` and scan every card of the merchant instead of using the two digest indexes.
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    # The id the Hub puts in every URL (`giftCardId`).
    card_id: Mapped[str] = mapped_column(String(40), unique=True)
    redemption_token: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the normalised redemption code: codes carry 80 random bits, so an unsalted hash
    # cannot be reversed and still lets `_search` find a card by its code.
    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    code_last4: Mapped[str] = mapped_column(String(4))
    relation_name: Mapped[str] = mapped_column(String(200))
    caption: Mapped[str | None] = mapped_column(String(200))
    # Keyed hash of the normalised profileId (email, document or user id): a blind index.
    owner_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True)
    # The profileId itself, Fernet-encrypted (personal data).
    owner: Mapped[bytes | None] = mapped_column(LargeBinary)
    restricted_to_owner: Mapped[bool] = mapped_column(Boolean, default=False)
    multiple_redemptions: Mapped[bool] = mapped_column(Boolean, default=True)
    multiple_credits: Mapped[bool] = mapped_column(Boolean, default=True)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500))
    emission_date: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expiring_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    available_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    held_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # Debits and credits ever applied, for single-use and single-load cards.
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GiftCardTransaction(Base):
    """A Debit (a hold that settlements post and cancellations release or refund) or a Credit
    (money added at once, which a cancellation can take back while the card still has it).
    Unique per card and `requestId`: one effect per request, whatever the retries."""

    __tablename__ = "giftcard_transactions"
    __table_args__ = (
        UniqueConstraint("card_pk", "request_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "settled_minor >= 0 AND released_minor >= 0 AND refunded_minor >= 0",
            name="totals_nonnegative",
        ),
        CheckConstraint("settled_minor + released_minor <= amount_minor", name="within_amount"),
        CheckConstraint("refunded_minor <= settled_minor", name="refund_within_settled"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    card_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("giftcards.id"), index=True)
    transaction_id: Mapped[str] = mapped_column(String(40), unique=True)
    request_id: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(10))  # Debit | Credit
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    settled_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    released_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    description: Mapped[str | None] = mapped_column(String(500))
    order_id: Mapped[str | None] = mapped_column(String(200))
    # When an unsettled remainder of this hold is released automatically; cleared once it is.
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiftCardOperation(Base):
    """A settlement or cancellation of a transaction, unique per transaction, kind and
    `requestId`: a repeat returns the stored `{oid, value, date}` without a second effect."""

    __tablename__ = "giftcard_operations"
    __table_args__ = (
        UniqueConstraint("transaction_pk", "kind", "request_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("kind IN ('settlement', 'cancellation')", name="kind_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    oid: Mapped[str] = mapped_column(String(40), unique=True)
    transaction_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("giftcard_transactions.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiftCardEntry(Base):
    """One line of a card's ledger. Never updated or deleted.

    kind         available  held
    credit          +v        0     a Credit transaction or an operator's load
    hold            -v       +v     a Debit transaction
    settle           0       -v     a settlement posts part of a hold
    release         +v       -v     a cancellation before settlement
    expire          +v       -v     a hold not settled in time
    refund          +v        0     a cancellation after settlement
    reverse         -v        0     a cancellation of a Credit
    """

    __tablename__ = "giftcard_entries"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    card_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("giftcards.id"), index=True)
    transaction_pk: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("giftcard_transactions.id"))
    kind: Mapped[str] = mapped_column(String(10))
    available_delta: Mapped[int] = mapped_column(BigInteger)
    held_delta: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ----------------------------------------------------------------------------- anti-fraud


class AntifraudAnalysis(Base):
    """One anti-fraud analysis, unique per merchant and VTEX transaction id: a repeated
    `POST /transactions` answers this row again.

    `status` is what VTEX reads (`approved`, `denied`, `undefined`). An `undefined` analysis waits
    for an operator (`analysis_type` manual: the review queue) or, in test-suite mode, for its
    scripted decision; at `deadline` it takes `default_decision`. The subject digests (keyed
    hashes, never the values) are what velocity rules count by.
    """

    __tablename__ = "antifraud_analyses"
    __table_args__ = (
        UniqueConstraint("merchant_id", "transaction_id"),
        CheckConstraint("status IN ('approved', 'denied', 'undefined')", name="status_known"),
        CheckConstraint("score >= 0 AND score <= 100", name="score_range"),
        Index("ix_antifraud_analyses_card", "merchant_id", "card_key", "created_at"),
        Index("ix_antifraud_analyses_email", "merchant_id", "email_key", "created_at"),
        Index("ix_antifraud_analyses_document", "merchant_id", "document_key", "created_at"),
        Index("ix_antifraud_analyses_ip", "merchant_id", "ip_key", "created_at"),
        Index("ix_antifraud_analyses_device", "merchant_id", "device_key", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    transaction_id: Mapped[str] = mapped_column(String(255))
    # Ours, unique: the `tid` VTEX stores, and the id operators decide reviews by.
    tid: Mapped[str] = mapped_column(String(40), unique=True)
    reference: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20))
    analysis_type: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer)
    responses: Mapped[dict[str, str]] = mapped_column(JSON)
    code: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(String(500))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    hook_url: Mapped[str | None] = mapped_column(Text)
    is_test_suite: Mapped[bool] = mapped_column(Boolean, default=False)
    # Test-suite ids ending in 3 or 4: how many status reads still answer `undefined`.
    pending_reads: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    default_decision: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ruleset_version: Mapped[int | None] = mapped_column(Integer)
    card_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    email_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    document_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    ip_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    device_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The order as VTEX sent it (buyer, addresses, IP...), Fernet-encrypted, for reviewers.
    order_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AntifraudSubject(Base):
    """A card, email, document, IP or device a merchant has seen, by keyed hash. Analyses upsert
    their subjects before counting them, which locks these rows until commit: two concurrent
    analyses of one card, on any process, count one after the other (velocity stays exact)."""

    __tablename__ = "antifraud_subjects"
    __table_args__ = (UniqueConstraint("merchant_id", "kind", "digest"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(10))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AntifraudRuleSet(Base):
    """A merchant's rule file, as loaded: every load is a new version, the highest is active."""

    __tablename__ = "antifraud_rulesets"
    __table_args__ = (UniqueConstraint("merchant_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    loaded_by: Mapped[str] = mapped_column(String(100))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
