"""Identifiers (short, sortable by time, safe to type at 3am) and digests."""

from __future__ import annotations

import hashlib
import os
import time

__all__ = ["digest", "new_id"]

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))


def new_id(prefix: str = "") -> str:
    """A ULID-like id: 10 characters of millisecond time, then 10 random ones."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(7), "big") >> 6  # 50 random bits
    return f"{prefix}{_base32(millis, 10)}{_base32(rand, 10)}"


def digest(text: str, length: int = 64) -> str:
    """A stable hash of ``text`` (hex, ``length`` characters): what the control store keeps
    instead of arguments, URLs or idempotency keys, which may hold secrets."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
