import Foundation
import Logging
import PostgresNIO

/// Users and their credentials. Every change to password, role or disabled bumps
/// `token_version`, which revokes every token issued before.
public protocol UserStore: Sendable {
    func find(id: Int64, logger: Logger) async throws -> UserRecord?
    func find(username: String, logger: Logger) async throws -> UserRecord?
    /// Re-hash of the same password with stronger parameters: tokens stay valid.
    func upgradeHash(id: Int64, from oldHash: String, to newHash: String, logger: Logger) async throws
    func list(logger: Logger) async throws -> [UserSummary]
}

public struct PostgresUserStore: UserStore {
    let database: Database

    public init(database: Database) {
        self.database = database
    }


    public func find(id: Int64, logger: Logger) async throws -> UserRecord? {
        try await one(
            "SELECT id, username, password_hash, role, disabled, token_version, password_changed_at FROM users WHERE id = \(id)",
            logger: logger
        )
    }

    public func find(username: String, logger: Logger) async throws -> UserRecord? {
        try await one(
            "SELECT id, username, password_hash, role, disabled, token_version, password_changed_at FROM users WHERE username = \(username)",
            logger: logger
        )
    }

    public func upgradeHash(id: Int64, from oldHash: String, to newHash: String, logger: Logger) async throws {
        // Only if nobody changed the password meanwhile.
        try await database.withConnection(logger: logger) { connection in
            try await drain(
                "UPDATE users SET password_hash = \(newHash) WHERE id = \(id) AND password_hash = \(oldHash)",
                on: connection, logger: logger
            )
        }
    }

    public func list(logger: Logger) async throws -> [UserSummary] {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                "SELECT username, role, disabled, password_changed_at FROM users ORDER BY username",
                logger: logger
            )
            var users: [UserSummary] = []
            for try await (username, role, disabled, changed) in rows.decode((String, String, Bool, Date).self) {
                users.append(UserSummary(username: username, role: Role(rawValue: role) ?? .requester, disabled: disabled, passwordChangedAt: changed))
            }
            return users
        }
    }

    private func one(_ query: PostgresQuery, logger: Logger) async throws -> UserRecord? {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(query, logger: logger)
            for try await (id, name, hash, role, disabled, version, changed) in rows.decode((Int64, String, String, String, Bool, Int, Date).self) {
                return UserRecord(id: id, username: name, passwordHash: hash, role: Role(rawValue: role) ?? .requester, disabled: disabled, tokenVersion: version, passwordChangedAt: changed)
            }
            return nil
        }
    }
}

enum PostgresStoreError: Error {
    case noRow
}
