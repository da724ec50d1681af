-- projection_rebuild_start: the checkpoint of a rebuild (%(projection)s is 'NAME:rebuild'),
-- created at the start of the feed in state 'rebuilding'. Run in the transaction that
-- creates the rebuild's tables.
INSERT INTO projection_checkpoints (projection, state) VALUES (%(projection)s, 'rebuilding')
