"""Identifiers that are unique across hosts and processes and sort by creation time."""

import os
import time
from uuid import UUID, SafeUUID

# Random bits are read from the kernel for many identifiers at once, not ten bytes at a
# time: each read is a system call, and a command takes three identifiers. A forked child
# starts with an empty pool, so it never hands out its parent's bits.
_IDS_PER_READ = 400
_pool: list[int] = []
os.register_at_fork(after_in_child=_pool.clear)

_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62


def uuid7() -> UUID:
    """Return a version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Uniqueness across processes and hosts rests on the random bits (from ``os.urandom``, which
    a forked child does not share with its parent); order is by millisecond.
    """
    if not _pool:
        _refill()
    millis = time.time_ns() // 1_000_000
    return _uuid_from_int((millis & 0xFFFF_FFFF_FFFF) << 80 | _pool.pop())


def _refill() -> None:
    """Fill the pool with the low 80 bits of as many UUIDv7s: version, 12 random bits
    (rand_a), variant, 62 random bits (rand_b)."""
    data = os.urandom(10 * _IDS_PER_READ)
    for start in range(0, len(data), 10):
        bits = int.from_bytes(data[start : start + 10], "big")
        _pool.append(
            _VERSION_AND_VARIANT | ((bits >> 62) & 0xFFF) << 64 | bits & 0x3FFF_FFFF_FFFF_FFFF
        )


def _uuid_from_int(value: int) -> UUID:
    """``UUID(int=value)`` for a value known to be in range, without the constructor's
    checks of its five alternative arguments (as ``UUID.__setstate__`` builds one)."""
    uuid = object.__new__(UUID)
    object.__setattr__(uuid, "int", value)
    object.__setattr__(uuid, "is_safe", SafeUUID.unknown)
    return uuid
