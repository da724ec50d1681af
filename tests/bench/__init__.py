"""The throughput benchmark (issue 4): prints figures, asserts no timings.

Not collected by pytest (no test_*.py here). Run it with ``tests/bench/run``; see
``docs/performance.md``.
"""
