-- read_stream_backward: events of one stream from version %(from_version)s (NULL: the head)
-- down, newest first, at most %(limit)s (NULL: all), and the stream's version, in one
-- statement (one snapshot). As read_stream_forward: one row with NULL event columns when
-- no event matches; payload and metadata as text.
SELECT head.version, e.event_id, e.event_type, e.version, e.occurred_on,
       e.payload::text, e.metadata::text
FROM (SELECT coalesce(max(h.version), 0) AS version
      FROM events h WHERE h.aggregate_id = %(stream)s) AS head
LEFT JOIN LATERAL (
    SELECT s.event_id, s.event_type, s.version, s.occurred_on, s.payload, s.metadata
    FROM events s
    WHERE s.aggregate_id = %(stream)s
      AND s.version <= coalesce(%(from_version)s::BIGINT, head.version)
    ORDER BY s.version DESC
    LIMIT %(limit)s
) AS e ON TRUE
ORDER BY e.version DESC
