-- Accounts that may obtain tokens. Passwords are argon2id PHC strings, never plain text.
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL UNIQUE
        CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role text NOT NULL CHECK (role IN ('admin', 'requester')),
    disabled boolean NOT NULL DEFAULT false,
    -- Bumped on every password, role or disabled change; tokens carry it as `ver`.
    token_version integer NOT NULL DEFAULT 1 CHECK (token_version > 0),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Failed-login throttling per username. Kept apart from `users` (rather than as columns there)
-- so that unknown usernames are throttled exactly like known ones: a 429 must not reveal
-- whether an account exists. Shared by every replica because it lives here.
CREATE TABLE login_throttle (
    username text PRIMARY KEY CHECK (char_length(username) BETWEEN 1 AND 256),
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    blocked_until timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
