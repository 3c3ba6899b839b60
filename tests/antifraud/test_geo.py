"""Offline country look-ups: IP registration country, card BIN issuing country, address codes.

Expected BIN countries were read from the source file the table was built from
(venelinkochev/bin-list-data@023a4f6, see connector/antifraud/data/README.md); expected IP
countries from the RIR registrations that iptocc ships.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from connector.antifraud import geo
from connector.antifraud.geo import bin_country, country_alpha2, ip_country

# -- ip_country ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),  # Google public DNS, ARIN
        ("200.160.0.1", "BR"),  # NIC.br, LACNIC
        ("1.1.1.1", "AU"),  # Cloudflare's anycast resolver: registered with APNIC in AU
        ("2001:4860:4860::8888", "US"),  # Google public DNS over IPv6
        ("2001:12ff::1", "BR"),  # NIC.br's IPv6 block
        ("::ffff:200.160.0.1", "BR"),  # IPv4-mapped, as dual-stack proxies report IPv4 clients
        (" 8.8.8.8\n", "US"),
    ],
)
def test_ip_country_of_public_addresses(ip: str, country: str) -> None:
    assert ip_country(ip) == country


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.10.10",  # link-local
        "0.0.0.0",  # noqa: S104 - an address to look up, not one to bind
        "255.255.255.255",
        "224.0.0.1",  # multicast
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",  # unique local
        "2001:db8::1",  # documentation
        "::ffff:10.0.0.1",
    ],
)
def test_ip_country_is_none_for_non_global_addresses(ip: str) -> None:
    assert ip_country(ip) is None


@pytest.mark.parametrize(
    "ip",
    [
        None,
        "",
        "   ",
        "not an ip",
        "8.8.8",
        "999.1.1.1",
        "8.8.8.8:53",
        "[2001:4860::8888]",
        "8.8.8.8/32",
    ],
)
def test_ip_country_is_none_for_missing_or_malformed_input(ip: str | None) -> None:
    assert ip_country(ip) is None


# -- bin_country ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bin_", "country"),
    [
        ("516292", "BR"),  # Nu Pagamentos, Mastercard
        ("438935", "BR"),  # Banco do Brasil, Elo
        ("650485", "BR"),  # Bradesco, Elo
        ("414720", "US"),  # JPMorgan Chase, Visa
        ("601100", "US"),  # Discover
        ("537030", "MX"),  # Banca Afirme
        ("411111", "PL"),  # the famous test-card BIN is a real Polish issuer's
        ("354000", "JP"),  # JCB: stored as the collapsed prefix 354
    ],
)
def test_bin_country_of_known_bins(bin_: str, country: str) -> None:
    assert bin_country(bin_) == country


def test_bin_country_accepts_7_and_8_digit_bins_and_spaces() -> None:
    assert bin_country("5162921") == "BR"
    assert bin_country("51629212") == "BR"
    assert bin_country("41472099") == "US"
    assert bin_country(" 516292 ") == "BR"


@pytest.mark.parametrize(
    "bin_",
    [
        "420354",  # not in the source, though 420353 and 420355 are US: no guessing
        "222101",  # in the source without a country
        "000000",
    ],
)
def test_bin_country_is_none_for_unknown_bins(bin_: str) -> None:
    assert bin_country(bin_) is None


@pytest.mark.parametrize(
    "bin_",
    [
        None,
        "",
        "41111",  # too short
        "411111111",  # longer than a BIN: a card number is not looked up
        "4111111111111111",
        "4111-11",
        "41 1111",
        "abcdef",
        "-41111",
        "４１１１１１",  # full-width digits pass str.isdigit
        "411111²",
    ],
)
def test_bin_country_is_none_for_malformed_input(bin_: str | None) -> None:
    assert bin_country(bin_) is None


def _write_table(path: Path, rows: str) -> Path:
    path.write_bytes(gzip.compress(f"prefix,country\n{rows}".encode("ascii")))
    return path


def test_longest_prefix_decides_and_short_input_inside_split_ranges_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = geo._load_bins(
        _write_table(tmp_path / "bins.csv.gz", "41111111,US\n41111112,BR\n5,GB\n")
    )
    monkeypatch.setattr(geo, "_bin_table", lambda: table)

    assert bin_country("41111111") == "US"
    assert bin_country("41111112") == "BR"
    assert bin_country("41111113") is None
    # The 6 and 7-digit BIN covers both 8-digit ranges, which disagree: no single answer.
    assert bin_country("411111") is None
    assert bin_country("4111111") is None
    assert bin_country("512345") == "GB"
    assert bin_country("59999999") == "GB"
    assert bin_country("600000") is None


def test_loader_merges_adjacent_prefixes_of_one_country(tmp_path: Path) -> None:
    # Contiguous US prefixes of three lengths become one range; adjacent prefixes of different
    # countries, or the same country with a gap between, stay apart.
    rows = "411118,US\n411119,US\n41112,US\n4113,BR\n4114,US\n4116,US\n"
    table = geo._load_bins(_write_table(tmp_path / "bins.csv.gz", rows))
    assert list(table.starts) == [41111800, 41130000, 41140000, 41160000]
    assert list(table.ends) == [41113000, 41140000, 41150000, 41170000]
    assert table.countries == ("US", "BR", "US", "US")


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ("4111,US\n41111,BR\n", "overlaps"),  # nested
        ("5,US\n4,BR\n", "out of order"),
        ("41a111,US\n", "bad BIN prefix"),
        ("411111111,US\n", "bad BIN prefix"),
        ("411111,us\n", "bad country"),
        ("411111,USA\n", "bad country"),
    ],
)
def test_loader_rejects_a_corrupt_table(tmp_path: Path, rows: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        geo._load_bins(_write_table(tmp_path / "bins.csv.gz", rows))


def test_loader_rejects_a_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "bins.csv.gz"
    path.write_bytes(gzip.compress(b"411111,US\n"))
    with pytest.raises(ValueError, match="header"):
        geo._load_bins(path)


def test_shipped_table_is_small_and_complete() -> None:
    assert geo.BINS_PATH.stat().st_size < 3_000_000
    table = geo._bin_table()
    # 194,001 prefixes merge into 106,735 ranges; a truncated file would load far fewer.
    assert len(table.starts) > 100_000
    assert len(table.starts) == len(table.ends) == len(table.countries)
    assert {"BR", "US", "MX", "JP", "PL"} <= set(table.countries)


# -- country_alpha2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "alpha2"),
    [
        ("BRA", "BR"),
        ("br", "BR"),
        ("BR", "BR"),
        (" usa ", "US"),
        ("DEU", "DE"),
        ("gbr", "GB"),
        ("XKX", "XK"),  # Kosovo: user-assigned, but what the BIN table uses
    ],
)
def test_country_alpha2_normalises_iso_codes(code: str, alpha2: str) -> None:
    assert country_alpha2(code) == alpha2


@pytest.mark.parametrize("code", [None, "", "   ", "XXX", "ZZ", "Brazil", "B", "BRAZ", "076"])
def test_country_alpha2_is_none_for_unknown_codes(code: str | None) -> None:
    assert country_alpha2(code) is None
