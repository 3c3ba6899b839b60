"""Logging: one format, and card data masked before any handler sees a record."""

from __future__ import annotations

import logging
from typing import Any

from connector.security import mask_card_data

_installed = False


def _install_masking_record_factory() -> None:
    """Mask at record creation, so every handler (uvicorn's, pytest's, a file) gets the masked
    text; a filter on one handler or logger would miss the others."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        masked = mask_card_data(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def configure_logging(level: str = "INFO") -> None:
    _install_masking_record_factory()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO; callback URLs carry VTEX's signature token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
