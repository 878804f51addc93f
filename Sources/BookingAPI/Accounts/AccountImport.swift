import Foundation
import Logging
import PostgresNIO

/// Bulk provisioning: creates missing users with generated passwords and sets the role of
/// existing ones. `atomic`: any failed row changes nothing. Otherwise each row stands alone.
extension AccountService {
    public struct ImportRow: Sendable {
        public let row: Int
        public let username: String
        public let role: String
        /// Why the row cannot be read at all (a missing or mistyped field), if so.
        public let problem: String?

        public init(row: Int, username: String, role: String, problem: String? = nil) {
            self.row = row
            self.username = username
            self.role = role
            self.problem = problem
        }
    }

    public struct ImportResult: Sendable, Codable, Equatable {
        public let row: Int
        public let username: String
        public var outcome: String
        public var password: String?
        public var error: String?
    }

    public static let importLimit = 1000

    /// Returns the results and whether anything was committed.
    public func importUsers(_ rows: [ImportRow], atomic: Bool, actor: AuditActor, logger: Logger) async throws -> (results: [ImportResult], committed: Bool) {
        var results: [ImportResult] = []
        var seen = Set<String>()
        for row in rows {
            var result = ImportResult(row: row.row, username: row.username, outcome: "failed")
            if let problem = row.problem {
                result.error = problem
            } else if let problem = UsernamePolicy.check(row.username) {
                result.error = problem
            } else if Role(rawValue: row.role) == nil {
                result.error = "role must be admin or requester"
            } else if !seen.insert(row.username).inserted {
                result.error = "appears twice"
            } else {
                result.outcome = "pending"
            }
            results.append(result)
        }
        if atomic, results.contains(where: { $0.outcome == "failed" }) {
            return (results.map { var r = $0; if r.outcome == "pending" { r.outcome = "unchanged" }; return r }, false)
        }
        // Passwords for the users that do not exist yet, hashed before any transaction opens.
        let candidates = results.filter { $0.outcome == "pending" }.map(\.username)
        let existing: Set<String> = try await database.withConnection(logger: logger) { connection in
            var names = Set<String>()
            for try await name in try await connection.collect("SELECT username FROM users WHERE username = ANY(\(candidates))", logger: logger).decode(String.self) {
                names.insert(name)
            }
            return names
        }
        var passwords: [String: (password: String, hash: String)] = [:]
        for name in candidates where !existing.contains(name) {
            let password = PasswordPolicy.generate()
            passwords[name] = (password, try await hasher.hash(password))
        }
        let planned = results
        let hashed = passwords
        let outcome: ([ImportResult], Bool) = try await changing(logger: logger) { connection in
            var results = planned
            for index in results.indices where results[index].outcome == "pending" {
                let name = results[index].username
                let role = Role(rawValue: rows[index].role)!
                if !atomic { try await drain("SAVEPOINT import_row", on: connection, logger: logger) }
                do {
                    if let fresh = hashed[name] {
                        let user = try await Self.insert(username: name, role: role, hash: fresh.hash, on: connection, logger: logger)
                        try await Audit.record("user.created", target: .user, id: user.id, actor: actor, note: "role \(role.rawValue) (import)", on: connection, logger: logger)
                        results[index].outcome = "created"
                        results[index].password = fresh.password
                    } else if let user = try await Self.one("SELECT \(unescaped: Self.columns) FROM users WHERE username = \(name)", on: connection, logger: logger) {
                        if user.role == role {
                            results[index].outcome = "unchanged"
                        } else {
                            _ = try await Self.update(id: user.id, role: role, disabled: nil, actor: actor, on: connection, logger: logger)
                            results[index].outcome = "updated"
                        }
                    } else {
                        throw AccountError.notFound
                    }
                    if !atomic { try await drain("RELEASE SAVEPOINT import_row", on: connection, logger: logger) }
                } catch {
                    let reason: String
                    switch error {
                    case AccountError.lastAdmin: reason = "would leave no enabled admin"
                    case AccountError.notFound: reason = "was deleted meanwhile"
                    case _ where DatabaseError.translating(error).map({ if case .constraint = $0 { true } else { false } }) == true:
                        reason = "exists already (created meanwhile)"
                    default: throw error
                    }
                    results[index].outcome = "failed"
                    results[index].password = nil
                    results[index].error = reason
                    if atomic { throw ImportAborted(results: results) }
                    try await drain("ROLLBACK TO SAVEPOINT import_row", on: connection, logger: logger)
                }
            }
            return (results, true)
        }
        return outcome
    }
}

/// An atomic import met a failing row inside the transaction: it rolls back, and the results
/// (without passwords) explain why.
struct ImportAborted: Error {
    let results: [AccountService.ImportResult]
}
