"""Metrics for Prometheus: counted in plain Python on the request path (``tally``), moved
into ``prometheus_client``'s values once a second and served on a port of their own
(``export``). See ``docs/operations.md``, "Metrics"."""
