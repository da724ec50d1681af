-- projection_rebuild_drop: forget a rebuild's checkpoint (its tables are dropped beside).
DELETE FROM projection_checkpoints WHERE projection = %(rebuild)s
