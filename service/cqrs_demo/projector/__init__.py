"""``cqrs-demo project``: the process that keeps the read models (see ``runner``, ``process``).

It depends on the ports (``EventStore.read_feed``, ``ReadModels``, ``ProjectionLocks``),
never on the store; ``bootstrap.create_projector`` wires it.
"""
