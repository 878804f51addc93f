import Crypto
import Foundation
import Logging
import Metrics
import PostgresNIO

/// Sessions of rotating refresh tokens (RFC 6749 §6, with reuse detection). A token is 256
/// random bits, shown once and stored only as its SHA-256. Exchanging one spends it and issues
/// the next in the same session; presenting a spent one again revokes the whole session (token
/// theft is assumed). A session also ends when the user's token version moves on.
struct SessionStore: Sendable {
    let database: Database
    let lifetime: Duration

    struct Issued: Sendable {
        let token: String
        let expiresIn: Int
        let sessionID: Int64
    }

    enum RefreshOutcome: Sendable {
        case rotated(Issued, user: UserRecord)
        /// Spent, revoked, expired, unknown, or its user changed: `reason` is for metrics and logs.
        case refused(reason: String)
    }

    static func newToken() -> (token: String, hash: Data) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return (token, hash(token))
    }

    static func hash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }

    var seconds: Int { Int(lifetime.components.seconds) }

    /// Starts a session for a login, on the caller's connection.
    static func start(userID: Int64, tokenVersion: Int, lifetime: Int, on connection: PostgresConnection, logger: Logger) async throws -> Issued {
        let rows = try await connection.collect(
            "INSERT INTO sessions (user_id, token_version) VALUES (\(userID), \(tokenVersion)) RETURNING id",
            logger: logger
        )
        var sessionID: Int64?
        for try await id in rows.decode(Int64.self) { sessionID = id }
        guard let sessionID else { throw DatabaseError.unexpected(sqlState: "-", message: "no session id returned") }
        return try await mint(sessionID: sessionID, lifetime: lifetime, on: connection, logger: logger)
    }

    private static func mint(sessionID: Int64, lifetime: Int, on connection: PostgresConnection, logger: Logger) async throws -> Issued {
        let (token, hash) = newToken()
        try await drain(
            """
            INSERT INTO refresh_tokens (token_hash, session_id, expires_at)
            VALUES (\(hash), \(sessionID), now() + make_interval(secs => \(lifetime)::int))
            """,
            on: connection, logger: logger
        )
        return Issued(token: token, expiresIn: lifetime, sessionID: sessionID)
    }

    func start(userID: Int64, tokenVersion: Int, logger: Logger) async throws -> Issued {
        let lifetime = seconds
        return try await database.transaction(logger: logger) { connection in
            try await drain("UPDATE users SET last_login_at = now() WHERE id = \(userID)", on: connection, logger: logger)
            return try await Self.start(userID: userID, tokenVersion: tokenVersion, lifetime: lifetime, on: connection, logger: logger)
        }
    }

    /// Exchanges a refresh token for the next one. No password hash is involved.
    func refresh(_ token: String, logger: Logger) async throws -> RefreshOutcome {
        let hash = Self.hash(token)
        let lifetime = seconds
        return try await database.transaction(logger: logger) { connection in
            // The row lock makes two exchanges of one token serialise: the second sees it spent.
            let rows = try await connection.collect(
                """
                SELECT r.session_id, r.spent_at IS NOT NULL, r.expires_at <= now(), s.revoked_at IS NOT NULL, s.token_version,
                       u.id, u.username, u.password_hash, u.role, u.disabled, u.token_version, u.password_changed_at
                FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id JOIN users u ON u.id = s.user_id
                WHERE r.token_hash = \(hash)
                FOR UPDATE OF r, s
                """,
                logger: logger
            )
            var found: (Int64, Bool, Bool, Bool, Int, UserRecord)?
            for try await (session, spent, expired, revoked, version, id, name, passwordHash, role, disabled, current, changed)
                in rows.decode((Int64, Bool, Bool, Bool, Int, Int64, String, String, String, Bool, Int, Date).self)
            {
                found = (session, spent, expired, revoked, version,
                         UserRecord(id: id, username: name, passwordHash: passwordHash, role: Role(rawValue: role) ?? .requester,
                                    disabled: disabled, tokenVersion: current, passwordChangedAt: changed))
            }
            guard let (session, spent, expired, revoked, version, user) = found else { return .refused(reason: "unknown") }
            if spent {
                // Reuse: someone holds a token that was already exchanged. End the session.
                try await drain("UPDATE sessions SET revoked_at = now() WHERE id = \(session) AND revoked_at IS NULL", on: connection, logger: logger)
                return .refused(reason: "reused")
            }
            if revoked { return .refused(reason: "revoked") }
            if expired { return .refused(reason: "expired") }
            if user.disabled { return .refused(reason: "disabled") }
            if user.tokenVersion != version { return .refused(reason: "user_changed") }
            try await drain("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = \(hash)", on: connection, logger: logger)
            try await drain("UPDATE users SET last_login_at = now() WHERE id = \(user.id)", on: connection, logger: logger)
            return .rotated(try await Self.mint(sessionID: session, lifetime: lifetime, on: connection, logger: logger), user: user)
        }
    }

    /// RFC 7009: revokes the session of `token`; unknown tokens are fine.
    func revoke(_ token: String, logger: Logger) async throws -> Bool {
        let hash = Self.hash(token)
        return try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                UPDATE sessions SET revoked_at = now()
                WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = \(hash)) AND revoked_at IS NULL
                RETURNING id
                """,
                logger: logger
            )
            var revoked = false
            for try await _ in rows.decode(Int64.self) { revoked = true }
            return revoked
        }
    }

    /// Ends every session of a user, on the caller's connection (inside its transaction).
    static func endAll(userID: Int64, on connection: PostgresConnection, logger: Logger) async throws {
        try await drain("UPDATE sessions SET revoked_at = now() WHERE user_id = \(userID) AND revoked_at IS NULL", on: connection, logger: logger)
    }

    /// Deletes what can never be used again: expired or spent tokens past their expiry, and
    /// sessions ended (or without live tokens) for a day. Bounds both tables.
    func prune(logger: Logger) async throws {
        try await database.withConnection(logger: logger) { connection in
            try await drain("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'", on: connection, logger: logger)
            try await drain(
                """
                DELETE FROM sessions s
                WHERE (s.revoked_at < now() - interval '1 day')
                   OR (s.created_at < now() - interval '1 day' AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id))
                """,
                on: connection, logger: logger
            )
        }
    }
}

/// `token_refreshes_total{outcome}` and `session_revocations_total{reason}`.
enum SessionMetrics {
    static func refresh(_ outcome: String) {
        Counter(label: MetricNames.tokenRefreshes, dimensions: [("outcome", outcome)]).increment()
    }

    static func revocation(_ reason: String) {
        Counter(label: MetricNames.sessionRevocations, dimensions: [("reason", reason)]).increment()
    }
}
