SELECT coalesce(max(version), 0) FROM events WHERE aggregate_id = %(stream)s
