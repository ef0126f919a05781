"""Which versions a cluster may move to: one minor at a time, never down, only minors ccp supports.

Versions may carry a pre-release suffix (1.35.0-alpha.0, builds of one's own with a bill of materials
of their own); they order as semantic versions do: 1.35.0-alpha.0 < 1.35.0-lab.1 < 1.35.0."""

from __future__ import annotations

import re

from ccp.errors import ConfigError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?$")


def parse(v: str) -> tuple:
    """-> (major, minor, patch, pre-release key): tuples that compare as the versions do."""
    m = _VERSION.match(v.strip())
    if not m:
        raise ConfigError(f"{v!r} is not a Kubernetes version", "write it as MAJOR.MINOR.PATCH, e.g. 1.37.1")
    major, minor, patch, pre = m.groups()
    # a release sorts after every pre-release of it; numeric identifiers before words, numbers by value
    key = (1,) if pre is None else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return int(major), int(minor), int(patch), key


def is_prerelease(v: str) -> bool:
    return parse(v)[3] != (1,)


def allowed_targets(current: str) -> list[str]:
    """The newest patch ccp ships for the current minor (if newer) and for the next one."""
    from ccp.config import versions

    cur = parse(current)
    out = []
    for minor in sorted(versions.supported_minors(), key=lambda m: parse(m + ".0")):
        v = versions.default_for_minor(minor)
        t = parse(v)
        if t > cur and t[:2] in (cur[:2], (cur[0], cur[1] + 1)):
            out.append(v)
    return out


def check(current: str, target: str) -> str:
    """-> "noop", "patch" or "minor"; a refusal says which targets are allowed. A pre-release of the same
    minor (a build of one's own, e.g. 1.35.0-alpha.0 -> 1.35.0-lab.1) is a "patch"."""
    from ccp.config import versions

    cur, want = parse(current), parse(target)
    allowed = allowed_targets(current)
    hint = (f"allowed from {current}: {', '.join(allowed)}" if allowed else f"{current} is the newest ccp supports")
    if want == cur:
        return "noop"
    if want < cur:
        raise ConfigError(f"{target} is older than the cluster's {current}: ccp does not downgrade", hint)
    if f"{want[0]}.{want[1]}" not in versions.supported_minors():
        raise ConfigError(f"Kubernetes {want[0]}.{want[1]} is not supported by this ccp "
                          f"(it supports {', '.join(versions.supported_minors())})", hint)
    if want[:2] == cur[:2]:
        return "patch"
    if want[0] != cur[0] or want[1] != cur[1] + 1:
        raise ConfigError(f"{current} -> {target} skips a minor: Kubernetes upgrades one minor at a time", hint)
    return "minor"
