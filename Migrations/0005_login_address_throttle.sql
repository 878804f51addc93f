-- Failed logins per client address, in one-minute buckets: 50 failures within 15 minutes
-- from one address (password spraying across usernames) block that address. Buckets older
-- than the window are pruned as new failures arrive (LoginThrottle), so the table stays small.
CREATE TABLE login_address_failures (
    address text NOT NULL CHECK (char_length(address) BETWEEN 1 AND 64),
    bucket timestamptz NOT NULL,
    failures integer NOT NULL CHECK (failures > 0),
    PRIMARY KEY (address, bucket)
);
CREATE INDEX login_address_failures_bucket_idx ON login_address_failures (bucket);
