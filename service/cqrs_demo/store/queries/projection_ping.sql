-- projection_ping: a round trip that tells whether a dedicated connection (the lock's, the
-- listener's) is still alive.
SELECT 1
