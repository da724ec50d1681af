"""Command handlers: one thin module per command, from a valid command to stored events.

A handler decides the events (pure domain code), then appends them to the command's
stream through the ``EventStore`` port (``ports``). It knows neither HTTP nor SQL.
``append`` holds what every command's append shares; ``history`` what a command whose
rules depend on the past shares.
"""
