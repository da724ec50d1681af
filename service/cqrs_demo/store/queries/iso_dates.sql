-- iso_dates: this session writes dates and times as ISO 8601 (2026-11-30 04:05:06.12+00)
-- whatever the server's default DateStyle: the reads run on libpq directly take timestamps
-- as that text (store/order_queries.py). psycopg reads every DateStyle, ISO included.
SET datestyle = ISO
