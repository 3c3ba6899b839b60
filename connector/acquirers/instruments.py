"""What the shopper pays with when the money does not come from a card: bank invoice numbers and
Pix codes. Deterministic per idempotency key, so a repeated answer shows the same instrument."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import segno


def _digits(key: str, count: int) -> str:
    seed = hashlib.sha256(key.encode()).hexdigest()
    return str(int(seed, 16)).rjust(count, "0")[:count]


def bank_invoice(key: str, amount_minor: int) -> dict[str, Any]:
    """A boleto-shaped instrument: the 47-digit line, formatted, and the 44-digit bar code."""
    amount = str(amount_minor).rjust(10, "0")[-10:]
    line = (_digits(key, 33) + "9" + amount + "000")[:47]
    formatted = (
        f"{line[0:5]}.{line[5:10]} {line[10:15]}.{line[15:21]} "
        f"{line[21:26]}.{line[26:32]} {line[32]} {line[33:47]}"
    )
    return {
        "identificationNumber": line,
        "identificationNumberFormatted": formatted,
        "barCodeImageType": "i25",
        "barCodeImageNumber": (_digits(key + ":bar", 34) + amount)[:44],
    }


def _emv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def _crc16(payload: str) -> str:
    """CRC-16/CCITT-FALSE, as the Pix BR Code requires for its last field."""
    crc = 0xFFFF
    for byte in payload.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return f"{crc:04X}"


def pix_code(key: str, amount_minor: int, merchant: str, pix_key: str) -> str:
    """A Pix "copia e cola" (EMV BR Code) for this payment."""
    account = _emv("00", "br.gov.bcb.pix") + _emv("01", pix_key)
    body = (
        _emv("00", "01")
        + _emv("26", account)
        + _emv("52", "0000")
        + _emv("53", "986")
        + _emv("54", f"{amount_minor / 100:.2f}")
        + _emv("58", "BR")
        + _emv("59", (merchant or "Merchant")[:25])
        + _emv("60", "SAO PAULO")
        + _emv("62", _emv("05", key.replace("-", "")[:25]))
        + "6304"
    )
    return body + _crc16(body)


def qr_png_base64(text: str) -> str:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=4)
    return base64.b64encode(buffer.getvalue()).decode()


def pix(key: str, amount_minor: int, merchant: str, pix_key: str) -> dict[str, Any]:
    code = pix_code(key, amount_minor, merchant, pix_key)
    payload = json.dumps({"code": code, "qrCodeBase64Image": qr_png_base64(code)})
    return {"paymentAppData": {"appName": "vtex.pix-payment", "payload": payload}}
