import Foundation
import Logging
import PostgresNIO

/// The operations behind `manage-passwords`: the server's `AccountService` (same rules, same
/// audit trail, actor `manage-passwords`) on the same database layer.
public struct UserAdministration: Sendable {
    let accounts: AccountService
    let store: any UserStore
    let logger: Logger

    /// Connects with `DATABASE_URL`, runs `body`, and shuts everything down.
    public static func run<T: Sendable>(_ body: @escaping @Sendable (UserAdministration) async throws -> T) async throws -> T {
        let url = try CommandSupport.databaseURL()
        let logger = CommandSupport.logger("manage-passwords")
        let hasher = PasswordHasher(configuration: try PasswordHashingConfiguration.load(from: EnvironmentReader()))
        do {
            let result = try await withDatabase(url, logger: logger) { database in
                try await body(UserAdministration(
                    accounts: AccountService(database: database, hasher: hasher), store: PostgresUserStore(database: database), logger: logger
                ))
            }
            try await hasher.shutdown()
            return result
        } catch {
            try? await hasher.shutdown()
            throw error
        }
    }

    public func setPassword(username: String, role: Role?, password: String) async throws -> (user: UserView, created: Bool) {
        do {
            return try await accounts.setPassword(username: username, role: role, password: password, actor: .managePasswords, logger: logger)
        } catch AccountError.notFound {
            throw CommandError("\(username) does not exist; give --role to create it")
        }
    }

    /// New random passwords for every entry, stored in one transaction.
    public func rotate(_ entries: [(username: String, role: Role)]) async throws -> [(username: String, password: String)] {
        try await accounts.rotate(entries, actor: .managePasswords, logger: logger)
    }

    public func setDisabled(username: String, disabled: Bool) async throws -> UserView {
        do {
            return try await accounts.setDisabled(username: username, disabled: disabled, actor: .managePasswords, logger: logger)
        } catch AccountError.notFound {
            throw CommandError("no user named \(username)")
        }
    }

    public func list() async throws -> [UserSummary] {
        try await store.list(logger: logger)
    }

    public static func table(_ users: [UserSummary]) -> String {
        let formatter = ISO8601DateFormatter()
        var lines = ["USERNAME                         ROLE       DISABLED  PASSWORD CHANGED"]
        for user in users {
            lines.append(
                user.username.padding(toLength: 33, withPad: " ", startingAt: 0)
                    + user.role.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + (user.disabled ? "yes" : "no").padding(toLength: 10, withPad: " ", startingAt: 0)
                    + formatter.string(from: user.passwordChangedAt)
            )
        }
        return lines.joined(separator: "\n")
    }
}

/// The `rotate` input: `username,role` per line; blank lines and `#` comments are skipped.
/// Every line is checked before anything is touched.
public enum RotationFile {
    public static func parse(_ text: String) throws -> [(username: String, role: Role)] {
        var entries: [(username: String, role: Role)] = []
        var seen = Set<String>()
        var problems: [String] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 2 else {
                problems.append("line \(index + 1): expected username,role")
                continue
            }
            if let problem = UsernamePolicy.check(fields[0]) { problems.append("line \(index + 1): \(problem)") }
            guard let role = Role(rawValue: fields[1]) else {
                problems.append("line \(index + 1): role must be admin or requester")
                continue
            }
            if !seen.insert(fields[0]).inserted { problems.append("line \(index + 1): \(fields[0]) appears twice") }
            entries.append((fields[0], role))
        }
        guard problems.isEmpty else { throw CommandError("nothing rotated: " + problems.joined(separator: "; ")) }
        guard !entries.isEmpty else { throw CommandError("nothing rotated: the file lists no users") }
        return entries
    }
}
