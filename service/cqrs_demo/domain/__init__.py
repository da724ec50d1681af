"""The domain: commands, events and the decisions that turn one into the other.

Nothing here performs I/O or imports anything outside the standard library.
"""
