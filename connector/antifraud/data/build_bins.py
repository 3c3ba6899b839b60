"""Regenerate ``bins.csv.gz`` (card BIN prefix -> issuing country) from bin-list-data.csv.

Offline: it reads a local copy of ``bin-list-data.csv`` from
https://github.com/venelinkochev/bin-list-data (CC BY 4.0) and writes a gzip'd CSV with the
header ``prefix,country``: one row per BIN prefix, ISO 3166-1 alpha-2 country (plus ``XK``,
Kosovo's user-assigned code, which the source and card networks use).

The output is a lossless compression of the source: a prefix replaces its ten children only when
all ten are present and name the same country, so every 6-digit BIN resolves to exactly what the
source says, and BINs that the source lacks (or lists without a country) stay unknown instead of
inheriting a neighbour's country. Rows are sorted and the gzip header carries no name or time, so
the same input always gives the same bytes.

Usage (from the repository root)::

    python connector/antifraud/data/build_bins.py /path/to/bin-list-data.csv \\
        connector/antifraud/data/bins.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import re
import sys
from collections import Counter
from pathlib import Path

BIN_COLUMN = "BIN"
COUNTRY_COLUMN = "isoCode2"
# The loader widens prefixes to 8 digits; the source has only 6-digit BINs today, but longer
# (8-digit) BINs are accepted so a future source with them needs no change here.
BIN_PATTERN = re.compile(r"[0-9]{6,8}")
# Kosovo has no official ISO 3166-1 code; issuers and the source use the user-assigned "XK".
EXTRA_COUNTRIES = frozenset({"XK"})


def known_countries() -> frozenset[str]:
    import pycountry

    return frozenset(country.alpha_2 for country in pycountry.countries) | EXTRA_COUNTRIES


def read_source(path: Path, countries: frozenset[str]) -> tuple[dict[str, str], Counter[str]]:
    """Map each BIN to its country; ``""`` marks a BIN listed without a usable country."""
    bins: dict[str, str] = {}
    skipped: Counter[str] = Counter()
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            bin_ = (row.get(BIN_COLUMN) or "").strip()
            country = (row.get(COUNTRY_COLUMN) or "").strip().upper()
            if not BIN_PATTERN.fullmatch(bin_):
                skipped["malformed BIN"] += 1
                continue
            if country not in countries:
                skipped["no or unknown country"] += 1
                country = ""
            if bins.get(bin_, country) != country:
                # Conflicting rows: the BIN's country is unknowable from this source.
                skipped["conflicting duplicate"] += 1
                country = ""
            bins[bin_] = country
    return bins, skipped


def collapse(bins: dict[str, str]) -> dict[str, str]:
    """Replace ten same-country siblings by their parent prefix, bottom-up; drop unknowns.

    Inputs of mixed lengths where one BIN is a prefix of another are not supported (the loader
    rejects overlapping prefixes), so they are refused here too.
    """
    ordered = sorted(bins)
    for shorter, longer in zip(ordered, ordered[1:], strict=False):
        if longer.startswith(shorter):
            raise ValueError(f"BIN {shorter} is a prefix of BIN {longer}")
    done: dict[str, str] = {}
    level = dict(bins)
    while level:
        groups: dict[str, dict[str, str]] = {}
        for prefix, country in level.items():
            groups.setdefault(prefix[:-1], {})[prefix] = country
        parents: dict[str, str] = {}
        for parent, kids in groups.items():
            countries = set(kids.values())
            if parent and len(kids) == 10 and len(countries) == 1:
                parents[parent] = countries.pop()
            else:
                done.update(kids)
        # Only a prefix whose whole subtree agreed can collapse further; "" (unknown) subtrees
        # collapse too, so that they keep blocking their ancestors, and are dropped at the end.
        level = parents
    return {prefix: country for prefix, country in done.items() if country}


def write_table(table: dict[str, str], out: Path) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["prefix", "country"])
    writer.writerows(sorted(table.items()))
    data = gzip.compress(text.getvalue().encode("ascii"), compresslevel=9, mtime=0)
    out.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("source", type=Path, help="local bin-list-data.csv")
    parser.add_argument("output", type=Path, help="where to write bins.csv.gz")
    args = parser.parse_args(argv)

    source: Path = args.source
    output: Path = args.output
    bins, skipped = read_source(source, known_countries())
    table = collapse(bins)
    data = write_table(table, output)

    by_length = Counter(len(prefix) for prefix in table)
    print(f"source: {source} sha256={hashlib.sha256(source.read_bytes()).hexdigest()}")
    print(f"BINs read: {len(bins)}, with a country: {sum(1 for c in bins.values() if c)}")
    for reason, count in sorted(skipped.items()):
        print(f"  {reason}: {count}")
    print(f"prefixes written: {len(table)} by length {dict(sorted(by_length.items()))}")
    print(f"countries: {len(set(table.values()))}")
    print(f"output: {output} {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
