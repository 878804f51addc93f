-- Webhook subscriptions, their deliveries and every attempt (API.md, "Webhooks (admin)").
CREATE TABLE webhook_subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url text NOT NULL,
    -- Event types, or {'*'} for all of them.
    events text[] NOT NULL CHECK (cardinality(events) > 0),
    description text,
    disabled boolean NOT NULL DEFAULT false,
    -- Why it was disabled: 'admin' or 'gone' (the receiver answered 410).
    disabled_reason text CHECK (disabled_reason IN ('admin', 'gone')),
    -- HMAC keys must be usable, so they are stored as they are (not hashed); they never leave
    -- the database but in a signature, and the one answer that creates or rotates them.
    secret bytea NOT NULL,
    previous_secret bytea,
    previous_secret_until timestamptz,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per event and subscription. `next_attempt_at` is when a dispatcher may take it;
-- a dispatcher that takes it moves `lease_until` forward, so no other replica sends it meanwhile.
CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until timestamptz,
    -- A retry asked for while an attempt is in flight: the attempt's outcome does not end it.
    retry_requested_at timestamptz,
    last_attempt_at timestamptz,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription_id, id DESC);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number integer NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms integer NOT NULL,
    status integer,
    error text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- Fan-out in the event's own transaction: an event and its deliveries commit together. Pings
-- are addressed to one subscription and queued by the request that sends them.
CREATE FUNCTION webhook_events_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type <> 'webhook.ping' THEN
        INSERT INTO webhook_deliveries (subscription_id, event_id)
        SELECT s.id, NEW.id FROM webhook_subscriptions s
        WHERE NOT s.disabled AND (s.events @> ARRAY[NEW.type] OR s.events @> ARRAY['*']);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER webhook_events_fan_out AFTER INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION webhook_events_fan_out();
