-- Booking requests and their append-only history.
CREATE TABLE bookings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL CHECK (char_length(topic) BETWEEN 1 AND 200 AND topic = btrim(topic)),
    event_time timestamptz NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 1 AND 1440),
    street text NOT NULL CHECK (char_length(street) BETWEEN 1 AND 200),
    city text NOT NULL CHECK (char_length(city) BETWEEN 1 AND 100),
    state text CHECK (char_length(state) <= 100),
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    requested_by text NOT NULL CHECK (char_length(requested_by) BETWEEN 3 AND 254 AND requested_by LIKE '%_@_%'),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    submitted_by text NOT NULL,
    -- No foreign key: a booking keeps its submitter's id even if the account is removed.
    submitter_id bigint NOT NULL,
    decided_by text,
    decided_at timestamptz,
    decision_note text CHECK (char_length(decision_note) <= 2000),
    -- clock_timestamp, not now(): rows inserted in one transaction still get distinct times.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A decision and its metadata exist together or not at all.
    CONSTRAINT bookings_decision_complete CHECK (
        (status = 'pending') = (decided_by IS NULL)
        AND (status = 'pending') = (decided_at IS NULL)
        AND (status <> 'pending' OR decision_note IS NULL)
    )
);

-- Keyset pagination: newest first, ties by id. Admin list (all), and a requester's own list.
-- EXPLAIN of the list queries (checked in BookingStoreTests) uses these as index scans.
CREATE INDEX bookings_created_idx ON bookings (created_at DESC, id DESC);
CREATE INDEX bookings_submitter_created_idx ON bookings (submitter_id, created_at DESC, id DESC);
CREATE INDEX bookings_status_created_idx ON bookings (status, created_at DESC, id DESC);
CREATE INDEX bookings_event_time_idx ON bookings (event_time);

-- Every submit, accept, reject and delete. No foreign key to bookings: history outlives them.
CREATE TABLE booking_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id bigint NOT NULL,
    action text NOT NULL CHECK (action IN ('submit', 'accept', 'reject', 'delete')),
    actor text NOT NULL,
    actor_id bigint NOT NULL,
    note text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX booking_events_booking_idx ON booking_events (booking_id, id);

-- Append-only: the database itself refuses to change or remove history.
CREATE FUNCTION booking_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'booking_events is append-only';
END;
$$;
CREATE TRIGGER booking_events_no_update_or_delete
    BEFORE UPDATE OR DELETE OR TRUNCATE ON booking_events
    FOR EACH STATEMENT EXECUTE FUNCTION booking_events_append_only();

-- Idempotency-Key records: one per (user, key), holding a hash of the request body and the
-- booking the first request created, so retries on any replica get the same answer.
CREATE TABLE idempotency_keys (
    user_id bigint NOT NULL,
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash text NOT NULL,
    booking_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
