"""Gift card secrets: codes with enough entropy, hashed and masked; owners behind a keyed hash."""

from __future__ import annotations

import math
import re

from pydantic import SecretStr

from connector.security import (
    REDEMPTION_ALPHABET,
    REDEMPTION_SYMBOLS,
    BlindIndex,
    generate_redemption_code,
    is_masked,
    mask_card_data,
    normalize_redemption_code,
    redemption_code_digest,
)


def test_codes_carry_80_random_bits_in_an_unambiguous_alphabet() -> None:
    assert len(set(REDEMPTION_ALPHABET)) == 32 and not set("01IO") & set(REDEMPTION_ALPHABET)
    assert REDEMPTION_SYMBOLS * math.log2(len(REDEMPTION_ALPHABET)) >= 80
    codes = {generate_redemption_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(re.fullmatch(r"(?:[A-Z2-9]{4}-){3}[A-Z2-9]{4}", code) for code in codes)
    # Every symbol shows up: the generator draws from the whole alphabet.
    assert set("".join(codes).replace("-", "")) == set(REDEMPTION_ALPHABET)


def test_a_code_matches_however_it_is_typed() -> None:
    code = generate_redemption_code()
    typed = f"  {code.lower().replace('-', ' ')} "
    assert normalize_redemption_code(typed) == code.replace("-", "")
    assert redemption_code_digest(typed) == redemption_code_digest(code)
    assert redemption_code_digest(code) != redemption_code_digest(generate_redemption_code())
    assert is_masked("***********ASDQ") and not is_masked(code)


def test_codes_are_masked_in_logs() -> None:
    code = "ABCD-EFGH-JKLM-NP23"
    assert mask_card_data(f"issued {code} to ana") == "issued ****-****-****-NP23 to ana"


def test_the_blind_index_is_keyed_and_ignores_case_and_spaces() -> None:
    one = BlindIndex.from_secret(SecretStr("key one"))
    two = BlindIndex.from_secret(SecretStr("key two"))
    assert one.digest(" Ana@Example.com ") == one.digest("ana@example.com")
    assert one.digest("ana@example.com") != two.digest("ana@example.com")
    assert one.digest("ana@example.com") != one.digest("bob@example.com")
