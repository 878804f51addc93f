import Foundation
import Logging
import PostgresNIO

/// Failed logins, in PostgreSQL so every replica agrees.
///
/// Per username: an attempt is counted as a failure *before* its password is checked, in one
/// statement that refuses it when the username is blocked, and a success then clears the count.
/// Row locks serialise concurrent attempts on the statement, so however many arrive at once, at
/// most `threshold` passwords are checked before a block; each further failure after a block
/// doubles it, up to `maximumBlockSeconds`.
///
/// Per client address: `addressThreshold` failures within `addressWindowMinutes` block the
/// address, whatever the usernames (password spraying).
public struct LoginThrottle: Sendable {
    let database: Database
    public var threshold = 5
    public var baseBlockSeconds: Int
    public var maximumBlockSeconds = 15 * 60
    public var addressThreshold = 50
    public var addressWindowMinutes = 15

    public init(database: Database, baseBlockSeconds: Int = 30) {
        self.database = database
        self.baseBlockSeconds = baseBlockSeconds
    }

    public enum Admission: Sendable, Equatable {
        case admitted
        /// Refused without checking the password; retry after this many seconds.
        case usernameBlocked(retryAfter: Int)
        case addressBlocked(retryAfter: Int)
    }

    /// Counts an attempt for `username` from `address` and says whether it may be checked.
    func admit(username: String, address: String, logger: Logger) async throws -> Admission {
        let threshold = self.threshold, base = self.baseBlockSeconds, maximum = self.maximumBlockSeconds
        let addressLimit = self.addressThreshold, window = self.addressWindowMinutes
        return try await database.withConnection(logger: logger) { connection in
            let sprayed = try await connection.collect(
                """
                SELECT sum(failures)::bigint,
                       ceil(extract(epoch FROM min(bucket) + make_interval(mins => \(window)::int) - now()))::bigint
                FROM login_address_failures
                WHERE address = \(address) AND bucket > now() - make_interval(mins => \(window)::int)
                """,
                logger: logger
            )
            for try await (failures, seconds) in sprayed.decode((Int?, Int?).self) {
                if let failures, failures >= addressLimit {
                    return .addressBlocked(retryAfter: max(1, seconds ?? 60))
                }
            }
            let counted = try await connection.collect(
                """
                INSERT INTO login_throttle AS t (username, consecutive_failures) VALUES (\(username), 1)
                ON CONFLICT (username) DO UPDATE SET
                    consecutive_failures = t.consecutive_failures + 1,
                    blocked_until = CASE WHEN t.consecutive_failures + 1 >= \(threshold)
                        THEN now() + make_interval(secs => least(\(maximum),
                            \(base) * power(2, least(t.consecutive_failures + 1 - \(threshold), 20))))
                        ELSE NULL END,
                    updated_at = now()
                WHERE t.blocked_until IS NULL OR t.blocked_until <= now()
                RETURNING consecutive_failures
                """,
                logger: logger
            )
            for try await _ in counted.decode(Int.self) { return .admitted }
            let blocked = try await connection.collect(
                "SELECT ceil(extract(epoch FROM blocked_until - now()))::bigint FROM login_throttle WHERE username = \(username)",
                logger: logger
            )
            for try await seconds in blocked.decode(Int?.self) { return .usernameBlocked(retryAfter: max(1, seconds ?? 1)) }
            return .usernameBlocked(retryAfter: 1)
        }
    }

    /// The password was wrong: the username's failure is already counted; the address's is
    /// counted here. Also prunes what no window needs any more.
    func recordFailure(address: String, logger: Logger) async throws {
        let window = self.addressWindowMinutes
        try await database.withConnection(logger: logger) { connection in
            try await drain(
                """
                INSERT INTO login_address_failures AS f (address, bucket, failures)
                VALUES (\(address), date_trunc('minute', now()), 1)
                ON CONFLICT (address, bucket) DO UPDATE SET failures = f.failures + 1
                """,
                on: connection, logger: logger
            )
            try await drain(
                "DELETE FROM login_address_failures WHERE bucket < now() - make_interval(mins => \(window + 1)::int)",
                on: connection, logger: logger
            )
            // Usernames quiet for a day and no longer blocked: bounds the table when someone
            // guesses at many names.
            try await drain(
                """
                DELETE FROM login_throttle
                WHERE updated_at < now() - interval '1 day' AND (blocked_until IS NULL OR blocked_until < now())
                """,
                on: connection, logger: logger
            )
        }
    }

    /// The password was never checked (the hashing queue was full): un-count the attempt, and
    /// lift a block that only it caused.
    func giveBack(username: String, logger: Logger) async throws {
        let threshold = self.threshold
        try await database.withConnection(logger: logger) { connection in
            try await drain(
                """
                UPDATE login_throttle SET
                    consecutive_failures = greatest(consecutive_failures - 1, 0),
                    blocked_until = CASE WHEN consecutive_failures - 1 >= \(threshold) THEN blocked_until ELSE NULL END
                WHERE username = \(username)
                """,
                on: connection, logger: logger
            )
        }
    }

    /// The password was right: the username starts afresh.
    func reset(username: String, logger: Logger) async throws {
        try await database.withConnection(logger: logger) { connection in
            try await drain("DELETE FROM login_throttle WHERE username = \(username)", on: connection, logger: logger)
        }
    }
}
