-- No two accepted bookings may overlap in time, enforced by PostgreSQL so that concurrent
-- accepts cannot both succeed. A range-only exclusion needs no btree_gist: GiST supports
-- tstzrange && natively (btree_gist would only be needed to mix in scalar equality).

-- The period [event_time, event_time + duration). Declared IMMUTABLE (timestamptz + interval
-- is only STABLE in general) because adding whole minutes never depends on the time zone.
CREATE FUNCTION booking_period(start timestamptz, minutes integer) RETURNS tstzrange
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN tstzrange(start, start + make_interval(mins => minutes), '[)');

ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap
    EXCLUDE USING gist (booking_period(event_time, duration_minutes) WITH &&)
    WHERE (status = 'accepted');
