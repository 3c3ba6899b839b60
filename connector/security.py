"""Credentials, encryption at rest and masking of card data."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from pydantic import SecretStr

# ----------------------------------------------------------------------------- merchant tokens


def generate_app_key() -> str:
    return "vtexappkey-" + secrets.token_hex(12)


def generate_app_token() -> str:
    # 256 bits of entropy: a salted SHA-256 is then as good as a slow hash, and fast per request.
    return secrets.token_urlsafe(32)


def hash_token(token: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """(salt, digest). Only these are stored; the token is shown once, when issued."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    return salt, hashlib.sha256(salt + token.encode()).digest()


def token_matches(token: str, salt: bytes, digest: bytes) -> bool:
    """Constant-time comparison of a presented token with a stored digest."""
    return hmac.compare_digest(hash_token(token, salt)[1], digest)


# A digest that never matches, compared when the app key is unknown so that an unknown key and a
# wrong token take the same time.
DUMMY_SALT, DUMMY_DIGEST = b"\0" * 16, hashlib.sha256(b"no-such-merchant").digest()


# ----------------------------------------------------------------------------- encryption


class MissingEncryptionKey(RuntimeError):
    pass


class FieldCipher:
    """Fernet with rotation: the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise MissingEncryptionKey(
                "CONNECTOR_ENCRYPTION_KEYS is empty: generate one with `connector keys generate`"
            )
        self._fernet = MultiFernet([Fernet(key.get_secret_value().encode()) for key in keys])

    def encrypt_json(self, value: Any) -> bytes:
        return self._fernet.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self._fernet.decrypt(token))

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the primary key (keeps the original timestamp)."""
        return self._fernet.rotate(token)


def generate_encryption_key() -> str:
    return Fernet.generate_key().decode()


# ----------------------------------------------------------------------------- masking

# 13 to 19 digits, optionally grouped by single spaces or dashes: anything shaped like a PAN.
_PAN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_CSC = re.compile(r'("(?:csc|cvv|cvc|securityCode)"\s*:\s*)"[^"]*"', re.IGNORECASE)
# VTEX Secure Proxy tokens (`#vtex#token#d799bae#number#`): they stand for card data.
_PROXY_TOKEN = re.compile(r"#vtex#[^\s\"']*#")
# Gift card redemption codes as this service issues them (`ABCD-EFGH-JKLM-NPQR`).
_REDEMPTION_CODE = re.compile(r"\b(?:[A-Z2-9]{4}-){3}([A-Z2-9]{4})\b")


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"{digits[:6]}******{digits[-4:]}"


def mask_card_data(text: str) -> str:
    """Keeps BIN and last four of anything that looks like a card number; hides CVVs, Secure
    Proxy tokens and all but the last group of gift card redemption codes."""
    text = _PAN.sub(_mask_pan, text)
    text = _PROXY_TOKEN.sub("#vtex#***#", text)
    text = _REDEMPTION_CODE.sub(r"****-****-****-\1", text)
    return _CSC.sub(r'\1"***"', text)


# ----------------------------------------------------------------------------- gift card codes

# 32 symbols, without the look-alikes I and O (and the digits 0 and 1): 5 bits each, so the 16
# symbols of a code carry 80 random bits.
REDEMPTION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REDEMPTION_SYMBOLS = 16


def generate_redemption_code() -> str:
    symbols = "".join(secrets.choice(REDEMPTION_ALPHABET) for _ in range(REDEMPTION_SYMBOLS))
    return "-".join(symbols[i : i + 4] for i in range(0, REDEMPTION_SYMBOLS, 4))


def normalize_redemption_code(code: str) -> str:
    """What a shopper types, as the service compares it: case, spaces and dashes do not matter."""
    return re.sub(r"[\s-]", "", code).upper()


def redemption_code_digest(code: str) -> bytes:
    """Stored instead of the code. 80 random bits make a plain SHA-256 irreversible, and a plain
    (unsalted) hash is what lets `_search` find a card by the code a shopper typed."""
    return hashlib.sha256(b"giftcard-code:" + normalize_redemption_code(code).encode()).digest()


def mask_redemption_code(last4: str) -> str:
    return f"****-****-****-{last4}"


def is_masked(code: str) -> bool:
    """VTEX echoes codes masked (`***********ASDQ`): such a value proves nothing."""
    return "*" in code


def generate_redemption_token() -> str:
    return secrets.token_urlsafe(24)


def generate_public_id() -> str:
    """Card, transaction and operation ids: 128 random bits as 32 hex digits, as VTEX's examples."""
    return secrets.token_hex(16)


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time equality of two secrets (tokens, codes, admin token)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


# ----------------------------------------------------------------------------- blind index


class BlindIndex:
    """A keyed hash of a personal identifier (email, document, user id), so that the database can
    find rows by it without holding the identifier in the clear. Identifiers are compared
    trimmed and case-insensitively."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, secret: SecretStr) -> BlindIndex:
        return cls(hashlib.sha256(b"blind-index:" + secret.get_secret_value().encode()).digest())

    def digest(self, identifier: str) -> bytes:
        normalized = identifier.strip().lower().encode()
        return hmac.new(self._key, normalized, hashlib.sha256).digest()
