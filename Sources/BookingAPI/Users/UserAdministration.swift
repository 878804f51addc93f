import Foundation
import Logging
import PostgresNIO

/// The operations behind `manage-passwords`, on the same store and hasher as the server.
public struct UserAdministration: Sendable {
    let store: any UserStore
    let hasher: PasswordHasher
    let logger: Logger

    /// Connects with `DATABASE_URL`, runs `body`, and shuts everything down.
    public static func run<T: Sendable>(_ body: @escaping @Sendable (UserAdministration) async throws -> T) async throws -> T {
        let url = try CommandSupport.databaseURL()
        let logger = CommandSupport.logger("manage-passwords")
        let hasher = PasswordHasher(configuration: try PasswordHashingConfiguration.load(from: EnvironmentReader()))
        do {
            let result = try await withDatabase(url, logger: logger) { database in
                try await body(UserAdministration(store: PostgresUserStore(database: database), hasher: hasher, logger: logger))
            }
            try await hasher.shutdown()
            return result
        } catch {
            try? await hasher.shutdown()
            throw error
        }
    }

    public func setPassword(username: String, role: Role?, password: String) async throws -> (user: UserRecord, created: Bool) {
        if role == nil, try await store.find(username: username, logger: logger) == nil {
            throw CommandError("\(username) does not exist; give --role to create it")
        }
        let hash = try await hasher.hash(password)
        return try await store.setPassword(username: username, role: role, passwordHash: hash, logger: logger)
    }

    /// New random passwords for every entry, stored in one transaction.
    public func rotate(_ entries: [(username: String, role: Role)]) async throws -> [(username: String, password: String)] {
        var passwords: [(username: String, password: String)] = []
        var rows: [(username: String, role: Role, passwordHash: String)] = []
        for entry in entries {
            let password = PasswordPolicy.generate()
            passwords.append((entry.username, password))
            rows.append((entry.username, entry.role, try await hasher.hash(password)))
        }
        try await store.setPasswords(rows, logger: logger)
        return passwords
    }

    public func setDisabled(username: String, disabled: Bool) async throws -> UserRecord {
        guard let user = try await store.setDisabled(username: username, disabled: disabled, logger: logger) else {
            throw CommandError("no user named \(username)")
        }
        return user
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
