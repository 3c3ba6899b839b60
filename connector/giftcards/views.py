"""Rows as the Gift Card Hub sees them. `base` is the path the protocol is mounted at (for
example `/giftcard`), so links work behind any prefix."""

from __future__ import annotations

from datetime import datetime

from connector.db.tables import GiftCard, GiftCardOperation, GiftCardTransaction
from connector.security import mask_redemption_code
from protocol.giftcards import (
    CardDetail,
    CardSummary,
    Link,
    OperationRecord,
    TransactionDetail,
    TransactionSummary,
)
from protocol.money import from_minor


def card_href(base: str, card: GiftCard) -> str:
    return f"{base}/giftcards/{card.card_id}"


def transaction_href(base: str, card: GiftCard, transaction: GiftCardTransaction) -> str:
    return f"{card_href(base, card)}/transactions/{transaction.transaction_id}"


def usable_balance(card: GiftCard, now: datetime) -> int:
    """What the card can pay now: nothing when blocked or expired."""
    if card.status != "active" or (card.expiring_date is not None and card.expiring_date <= now):
        return 0
    return card.available_minor


def summary(base: str, card: GiftCard, provider: str, now: datetime) -> CardSummary:
    balance = from_minor(usable_balance(card, now), card.currency)
    return CardSummary(
        id=card.card_id,
        provider=provider,
        balance=balance,
        total_balance=balance,
        caption=card.caption,
        relation_name=card.relation_name,
        currency_code=card.currency,
        emission_date=card.emission_date,
        expiring_date=card.expiring_date,
        self_link=Link(href=card_href(base, card)),
    )


def detail(base: str, card: GiftCard, provider: str, now: datetime) -> CardDetail:
    transactions = Link(href=f"{card_href(base, card)}/transactions")
    return CardDetail(
        id=card.card_id,
        redemption_token=card.redemption_token,
        redemption_code=mask_redemption_code(card.code_last4),
        balance=from_minor(usable_balance(card, now), card.currency),
        emission_date=card.emission_date,
        expiring_date=card.expiring_date,
        currency_code=card.currency,
        caption=card.caption,
        relation_name=card.relation_name,
        provider=provider,
        transactions=transactions,
        transaction=transactions,
    )


def transaction_summary(
    base: str, card: GiftCard, transaction: GiftCardTransaction
) -> TransactionSummary:
    return TransactionSummary(
        card_id=card.card_id,
        id=transaction.transaction_id,
        self_link=Link(href=transaction_href(base, card, transaction)),
    )


def transaction_detail(
    base: str, card: GiftCard, transaction: GiftCardTransaction
) -> TransactionDetail:
    href = transaction_href(base, card, transaction)
    return TransactionDetail(
        value=from_minor(transaction.amount_minor, card.currency),
        description=transaction.description,
        date=transaction.created_at,
        request_id=transaction.request_id,
        operation="Debit" if transaction.operation == "Debit" else "Credit",
        order_id=transaction.order_id,
        settlement=Link(href=f"{href}/settlements"),
        cancellation=Link(href=f"{href}/cancellations"),
        authorization=Link(href=f"{href}/authorization"),
    )


def authorization(card: GiftCard, transaction: GiftCardTransaction) -> OperationRecord:
    return OperationRecord(
        oid=transaction.transaction_id,
        value=from_minor(transaction.amount_minor, card.currency),
        date=transaction.created_at,
    )


def operation(card: GiftCard, row: GiftCardOperation) -> OperationRecord:
    return OperationRecord(
        oid=row.oid, value=from_minor(row.amount_minor, card.currency), date=row.created_at
    )
