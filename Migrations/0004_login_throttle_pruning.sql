-- Failed-login rows are pruned a day after their last failure (LoginThrottle.recordFailure),
-- so guessing at many usernames cannot grow the table without bound. This index keeps that
-- prune a short range scan.
CREATE INDEX login_throttle_updated_idx ON login_throttle (updated_at);
