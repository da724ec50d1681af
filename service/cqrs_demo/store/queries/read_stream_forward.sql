-- read_stream_forward: events of one stream from version %(from_version)s up, oldest first,
-- at most %(limit)s (NULL: all), and the stream's version, in one statement (one snapshot).
-- The head row is always there: a stream with no events, or none from that version on,
-- gives one row with the version and NULL event columns. Payload and metadata come as
-- text, so that the reader decodes numbers as exact decimals.
SELECT head.version, e.event_id, e.event_type, e.version, e.occurred_on,
       e.payload::text, e.metadata::text
FROM (SELECT coalesce(max(h.version), 0) AS version
      FROM events h WHERE h.aggregate_id = %(stream)s) AS head
LEFT JOIN LATERAL (
    SELECT s.event_id, s.event_type, s.version, s.occurred_on, s.payload, s.metadata
    FROM events s
    WHERE s.aggregate_id = %(stream)s AND s.version >= %(from_version)s
    ORDER BY s.version
    LIMIT %(limit)s
) AS e ON TRUE
ORDER BY e.version
