-- Booking lifecycle: withdrawal (`cancelled`), a count of status changes for calendars, an index
-- for availability, and secret calendar feeds.
--
-- `expired` is not stored: a pending booking whose event has started reads as expired wherever it
-- is read, and accepting or cancelling it is refused by the same clock comparison inside the
-- UPDATE that moves it (see PostgresBookingStore), so no sweeper is needed for correctness.

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('pending', 'accepted', 'rejected', 'cancelled'));

-- How many times the stored status changed: an iCalendar SEQUENCE (expiry adds one when read).
ALTER TABLE bookings ADD COLUMN status_changes integer NOT NULL DEFAULT 0 CHECK (status_changes >= 0);
UPDATE bookings SET status_changes = 1 WHERE status <> 'pending';

ALTER TABLE booking_events DROP CONSTRAINT booking_events_action_check;
ALTER TABLE booking_events ADD CONSTRAINT booking_events_action_check
    CHECK (action IN ('submit', 'accept', 'reject', 'cancel', 'delete'));

-- Availability reads accepted bookings by period; the exclusion constraint's GiST index already
-- covers `booking_period(...) && range WHERE status = 'accepted'`, so no further index is needed.

-- Feeds a calendar program subscribes to by a secret URL. Only the SHA-256 of the secret is kept.
CREATE TABLE calendar_feeds (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    secret_hash bytea NOT NULL UNIQUE CHECK (octet_length(secret_hash) = 32),
    created_by text NOT NULL,
    created_by_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Feeds list bookings by event time from 30 days ago on.
CREATE INDEX bookings_live_event_time_idx ON bookings (event_time) WHERE status IN ('pending', 'accepted');
