-- The transactional outbox of webhook events (API.md, "Webhooks"). Each row is written in the
-- transaction of the change it reports, so there is no event without its change and no committed
-- change without its event. Dispatchers (added with subscriptions) read it; a trigger notifies
-- them at commit.
CREATE TABLE webhook_events (
    -- The Standard Webhooks message id: the same on every retry of the event.
    id text PRIMARY KEY DEFAULT ('evt_' || replace(gen_random_uuid()::text, '-', '')),
    type text NOT NULL CHECK (type IN (
        'booking.submitted', 'booking.accepted', 'booking.rejected', 'booking.cancelled',
        'booking.expired', 'booking.deleted', 'user.created', 'user.updated', 'webhook.ping')),
    -- The booking or user exactly as the API showed it at the change, as JSON text: what is
    -- signed and sent is these bytes.
    data text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at, id);

CREATE FUNCTION webhook_events_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_events', NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_events_notify AFTER INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION webhook_events_notify();

-- Expiry is computed when read; `booking.expired` is reported once, by a sweeper, which marks
-- what it reported here (in the same transaction as the event).
ALTER TABLE bookings ADD COLUMN expiry_reported boolean NOT NULL DEFAULT false;
CREATE INDEX bookings_unreported_expiry_idx ON bookings (event_time)
    WHERE status = 'pending' AND NOT expiry_reported;
