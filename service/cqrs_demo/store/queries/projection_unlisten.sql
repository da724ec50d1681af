-- projection_unlisten: no wake-ups while every projection reads on a timer (busy); see
-- store/notifications.py. projection_listen starts them again.
UNLISTEN cqrs_events
