"""Compatibility levels (Confluent's `CompatibilityLevel`) applied to a format's reader/writer check.

BACKWARD: the new schema can read data written with the previous one(s). FORWARD: the previous schema(s) can
read data written with the new one. FULL: both. The `_TRANSITIVE` forms check every live version, the plain
forms only the latest.
"""

from __future__ import annotations

from collections.abc import Sequence

from moldau.registry import formats
from moldau.registry.formats import ParsedSchema

LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


def check(level: str, new: ParsedSchema, previous: Sequence[ParsedSchema]) -> list[str]:
    """Messages explaining why `new` breaks `level` against `previous` (oldest first); empty when compatible."""
    if level == "NONE" or not previous:
        return []
    against = previous if level.endswith("_TRANSITIVE") else previous[-1:]
    base = level.removesuffix("_TRANSITIVE")
    problems: list[str] = []
    for old in reversed(against):
        if base in ("BACKWARD", "FULL"):
            problems += [f"{base}: {m}" for m in formats.incompatibilities(new, old)]
        if base in ("FORWARD", "FULL"):
            problems += [f"{base}: {m}" for m in formats.incompatibilities(old, new)]
        if problems:
            break
    return problems
