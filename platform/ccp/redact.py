"""Keep secrets out of everything ccp writes.

Every secret value ccp resolves (vCenter password, tokens, keys) is registered here the moment it
is read; the console, the log files and the journal pass their text through ``scrub``. This is a
second line of defence: the first is never formatting a secret into a message at all.
"""

from __future__ import annotations

import threading

MASK = "********"
_MIN_LEN = 4  # shorter values would mask ordinary words; such "secrets" are rejected at load time
_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> None:
    if not value or len(value) < _MIN_LEN:
        return
    with _lock:
        _secrets.add(value)
        stripped = value.strip()
        if len(stripped) >= _MIN_LEN:
            _secrets.add(stripped)


def scrub(text: str) -> str:
    if not _secrets or not text:
        return text
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clear() -> None:
    """For tests: forget registered secrets."""
    with _lock:
        _secrets.clear()
