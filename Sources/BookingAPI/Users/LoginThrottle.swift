import Foundation
import Logging
import PostgresNIO

/// Consecutive failed logins per username, in PostgreSQL so every replica agrees. After
/// `threshold` failures a username is blocked; each further failure doubles the block, up to
/// `maximumBlock`. A success clears it.
public struct LoginThrottle: Sendable {
    let database: Database
    public var threshold = 5
    public var baseBlockSeconds: Int
    public var maximumBlockSeconds = 15 * 60

    public init(database: Database, baseBlockSeconds: Int = 30) {
        self.database = database
        self.baseBlockSeconds = baseBlockSeconds
    }

    /// Seconds until `username` may try again, or nil when it may try now.
    func retryAfter(username: String, logger: Logger) async throws -> Int? {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.query(
            """
            SELECT ceil(extract(epoch FROM blocked_until - now()))::bigint FROM login_throttle
            WHERE username = \(username) AND blocked_until > now()
            """,
                logger: logger
            )
            for try await seconds in rows.decode(Int.self) { return max(1, seconds) }
            return nil
        }
    }

    func recordFailure(username: String, logger: Logger) async throws {
        try await database.withConnection(logger: logger) { connection in
            try await drain(
            """
            INSERT INTO login_throttle AS t (username, consecutive_failures) VALUES (\(username), 1)
            ON CONFLICT (username) DO UPDATE SET
                consecutive_failures = t.consecutive_failures + 1,
                blocked_until = CASE WHEN t.consecutive_failures + 1 >= \(threshold)
                    THEN now() + make_interval(secs => least(\(maximumBlockSeconds),
                        \(baseBlockSeconds) * power(2, least(t.consecutive_failures + 1 - \(threshold), 20))))
                    ELSE NULL END,
                updated_at = now()
            """,
                on: connection, logger: logger
            )
            // Forget usernames quiet for a day and no longer blocked: bounds the table when
            // someone guesses at many names.
            try await drain(
                """
                DELETE FROM login_throttle
                WHERE updated_at < now() - interval '1 day' AND (blocked_until IS NULL OR blocked_until < now())
                """,
                on: connection, logger: logger
            )
        }
    }

    func reset(username: String, logger: Logger) async throws {
        try await database.withConnection(logger: logger) { connection in
            try await drain("DELETE FROM login_throttle WHERE username = \(username)", on: connection, logger: logger)
        }
    }
}
