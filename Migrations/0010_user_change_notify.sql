-- Each replica keeps signed-in users' token state (username, role, disabled, token version) in
-- memory and drops an entry when PostgreSQL says it changed: every change that matters to a
-- token notifies `user_changes` with the user's id, delivered at commit.
CREATE FUNCTION notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('user_changes', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.disabled IS DISTINCT FROM NEW.disabled OR OLD.username IS DISTINCT FROM NEW.username)
    EXECUTE FUNCTION notify_user_change();

CREATE TRIGGER users_notify_delete AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION notify_user_change();

-- The moderation queue: bookings of one status by event time (GET /booking?order=event_time).
CREATE INDEX bookings_status_event_idx ON bookings (status, event_time, id);
