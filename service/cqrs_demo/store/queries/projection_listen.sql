-- projection_listen: wake-ups: every transaction that appends events notifies this channel
-- (store.notifications.CHANNEL) once, when it commits.
LISTEN cqrs_events
