"""Identifiers that are unique across hosts and processes and sort by creation time."""

import os
import time
from uuid import UUID

_RANDOM_BYTES_PER_READ = 4096

# Random bytes read from the kernel in blocks, not ten at a time: each read is a system
# call, and a command takes three identifiers. A forked child starts with an empty pool,
# so it never hands out its parent's bytes.
_pool = bytearray()
os.register_at_fork(after_in_child=_pool.clear)


def uuid7() -> UUID:
    """Return a version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Uniqueness across processes and hosts rests on the random bits (from ``os.urandom``, which
    a forked child does not share with its parent); order is by millisecond.
    """
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(_random_bytes(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= ((random_bits >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= random_bits & 0x3FFF_FFFF_FFFF_FFFF  # rand_b: 62 bits
    return UUID(int=value)


def _random_bytes(count: int) -> bytes:
    if len(_pool) < count:
        _pool[:] = os.urandom(_RANDOM_BYTES_PER_READ)
    taken = bytes(_pool[-count:])
    del _pool[-count:]
    return taken
