"""A finding and the sections that make them."""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass, field

SECTIONS = ("vsphere", "machines", "hosts", "kubernetes", "addons", "certs", "hardening")
SEVERITIES = ("ok", "warn", "fail")


@dataclass
class Finding:
    section: str
    check: str
    severity: str            # ok | warn | fail
    what: str
    evidence: list[str] = field(default_factory=list)
    remediation: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")


def sample(items: list[str], n: int = 10) -> list[str]:
    """The first ``n`` items, and how many more there are."""
    return items[:n] + ([f"... and {len(items) - n} more"] if len(items) > n else [])


def sample_sorted(items: list[str], n: int = 10) -> list[str]:
    """sample(sorted(items), n) without sorting them all: 500 failing pods need only their first 10."""
    return heapq.nsmallest(n, items) + ([f"... and {len(items) - n} more"] if len(items) > n else [])
