"""Offline country look-ups for the anti-fraud rules: IP address, card BIN, address country.

Everything here is answered from data shipped with the code; nothing touches the network, so a
look-up costs microseconds and works the same in an isolated deployment.

What the answers mean, and where they stop being true:

- `ip_country` gives the country a Regional Internet Registry lists for the block holding the
  address (the `iptocc` package's tables). That is where the block is *registered*, not where the
  buyer is: cloud, CDN, VPN, mobile-carrier and corporate blocks are often used far from their
  registration country (1.1.1.1 is registered in AU), and blocks change hands after the tables
  are built. Private, loopback, link-local, documentation and other non-global addresses have no
  country.
- `bin_country` gives the issuing country that an open BIN list records for a card's first 6 to 8
  digits (``data/bins.csv.gz``; source, licence and date in ``data/README.md``). Such lists are
  incomplete and age: BIN ranges are reassigned, 8-digit BINs split old 6-digit ranges, and
  co-branded or fintech cards may be issued elsewhere than their brand suggests. A BIN the list
  does not know gives None, never a guess from its neighbours.
- `country_alpha2` normalises the country codes VTEX sends in addresses (usually ISO 3166-1
  alpha-3) to alpha-2 with `pycountry`'s ISO tables.

The rules treat None as "unknown" and never fire on it, so every function returns None rather
than raising on input it cannot use.
"""

from __future__ import annotations

import csv
import gzip
import ipaddress
import sys
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pycountry
from iptocc import country_code

__all__ = ["bin_country", "country_alpha2", "ip_country"]

BINS_PATH = Path(__file__).parent / "data" / "bins.csv.gz"

# Card BINs are 6 digits, or 8 since the 2022 ISO/IEC 7812 change; anything else (a full card
# number included) is not a BIN.
_BIN_MIN, _BIN_MAX = 6, 8
# Every prefix is widened to the range of 8-digit numbers it covers, so tables with prefixes of any
# length up to 8 share one sorted array.
_SCALE = {length: 10 ** (_BIN_MAX - length) for length in range(1, _BIN_MAX + 1)}

# Kosovo has no official ISO 3166-1 code (so pycountry lacks it), but card networks, the BIN
# source and the EU use the user-assigned XK/XKX; knowing it keeps a Kosovar card with a Kosovar
# address from looking like a mismatch.
_EXTRA_CODES = {"XK": "XK", "XKX": "XK"}


def ip_country(ip: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code of the country the address's block is registered in, or None.

    Accepts IPv4 and IPv6 text (surrounding spaces ignored); IPv4-mapped IPv6 addresses
    (``::ffff:a.b.c.d``, as dual-stack proxies report IPv4 clients) are looked up as IPv4. None
    for missing or malformed input, non-global addresses and blocks the tables do not list.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # iptocc already answers None for these, but the check is cheap and keeps the promise
    # independent of how a future iptocc release treats reserved space.
    if not address.is_global:
        return None
    return country_code(str(address))


def bin_country(bin_: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code of the card issuer's country for a 6 to 8 digit BIN, or None.

    The longest listed prefix of the BIN decides. A 6-digit BIN inside a range that the table only
    lists in 7 or 8-digit parts is ambiguous and gives None (today's table has no such parts).
    """
    if bin_ is None:
        return None
    digits = bin_.strip()
    # isascii: str.isdigit also accepts other scripts' digits and superscripts.
    if not (_BIN_MIN <= len(digits) <= _BIN_MAX and digits.isascii() and digits.isdigit()):
        return None
    table = _bin_table()
    scale = _SCALE[len(digits)]
    low = int(digits) * scale
    i = bisect_right(table.starts, low) - 1
    if i >= 0 and table.ends[i] >= low + scale:
        return table.countries[i]
    return None


def country_alpha2(code: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code for an alpha-3 or alpha-2 code in any case, or None if unknown."""
    if code is None:
        return None
    return _alpha2_by_code().get(code.strip().upper())


@dataclass(frozen=True, slots=True)
class _BinTable:
    """Disjoint ranges of 8-digit numbers, sorted by start, each with its issuing country.

    Parallel arrays keep ~100k ranges in under 2 MB (a dict of prefix strings would take tens),
    and a bisection over them answers in well under a microsecond.
    """

    starts: array[int]
    ends: array[int]  # exclusive
    countries: tuple[str, ...]


@cache
def _bin_table() -> _BinTable:
    # Loaded on first use, not at import: commands that never look up a BIN skip the ~0.2 s parse.
    return _load_bins(BINS_PATH)


def _load_bins(path: Path) -> _BinTable:
    starts: array[int] = array("I")
    ends: array[int] = array("I")
    countries: list[str] = []
    with gzip.open(path, "rt", encoding="ascii", newline="") as fh:
        reader = csv.reader(fh)
        if next(reader, None) != ["prefix", "country"]:
            raise ValueError(f"{path}: expected a 'prefix,country' header")
        for row in reader:
            prefix, country = row
            if not (1 <= len(prefix) <= _BIN_MAX and prefix.isascii() and prefix.isdigit()):
                raise ValueError(f"{path}: bad BIN prefix {prefix!r}")
            if not (len(country) == 2 and country.isascii() and country.isupper()):
                raise ValueError(f"{path}: bad country {country!r} for prefix {prefix}")
            scale = _SCALE[len(prefix)]
            start = int(prefix) * scale
            if ends and start < ends[-1]:
                # build_bins.py writes disjoint prefixes in order (which for disjoint prefixes is
                # also numeric order), so rows can be streamed without a sort and nested prefixes
                # need no longest-match resolution; anything else means a hand-edited file.
                raise ValueError(f"{path}: prefix {prefix} is out of order or overlaps another")
            if ends and start == ends[-1] and countries[-1] == country:
                # Adjacent same-country prefixes answer alike, so one range serves them all.
                ends[-1] = start + scale
            else:
                starts.append(start)
                ends.append(start + scale)
                countries.append(sys.intern(country))
    return _BinTable(starts, ends, tuple(countries))


@cache
def _alpha2_by_code() -> dict[str, str]:
    # One dict of both code forms: a plain lookup, instead of pycountry's keyword search per call.
    table: dict[str, str] = {}
    for country in pycountry.countries:
        table[country.alpha_2] = country.alpha_2
        table[country.alpha_3] = country.alpha_2
    table.update(_EXTRA_CODES)
    return table
