-- projection_try_lock: take the session-level advisory lock of projection %(projection)s
-- without waiting: true if this session now holds it. Held until the session ends, so a
-- projector that dies (its connection closed, or cut by the server) frees it at once.
-- Key: (1885433460, hashtext(name)); 1885433460 is 'proj' in ASCII, apart from migrate's lock.
SELECT pg_try_advisory_lock(1885433460, hashtext(%(projection)s))
