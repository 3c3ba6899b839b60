"""The manifest VTEX reads at homologation: what this deployment's settings enable."""

from __future__ import annotations

from connector.settings import Settings
from protocol.payments import (
    AutoSettleDelay,
    CustomField,
    CustomFieldOption,
    Manifest,
    ManifestPaymentMethod,
)


def build_manifest(settings: Settings) -> Manifest:
    return Manifest(
        payment_methods=[
            ManifestPaymentMethod(name=name, allows_split=settings.split_mode.value)
            for name in settings.payment_methods
        ],
        custom_fields=[
            CustomField(
                name=field.name,
                type=field.type,
                options=[CustomFieldOption(**option) for option in field.options]
                if field.options
                else None,
            )
            for field in settings.custom_fields
        ],
        auto_settle_delay=AutoSettleDelay(
            minimum=str(settings.auto_settle_delay_min_hours),
            maximum=str(settings.auto_settle_delay_max_hours),
        ),
    )
