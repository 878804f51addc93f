import Foundation
import Logging
import PostgresNIO

/// A user as the API shows it: never a hash.
public struct UserView: Sendable, Codable, Equatable {
    public let id: Int64
    public let username: String
    public let role: Role
    public let disabled: Bool
    public let created_at: Date
    public let password_changed_at: Date
    public let last_login_at: Date?

    // Nulls are written, not omitted: every field is always present.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(username, forKey: .username)
        try container.encode(role, forKey: .role)
        try container.encode(disabled, forKey: .disabled)
        try container.encode(created_at, forKey: .created_at)
        try container.encode(password_changed_at, forKey: .password_changed_at)
        try container.encode(last_login_at, forKey: .last_login_at)
    }
}

public enum AccountError: Error, Sendable, Equatable {
    case notFound
    case usernameTaken(String)
    /// The change would leave no enabled admin.
    case lastAdmin
    case invalid([FieldError])
}

public struct UserListFilter: Sendable {
    public var role: Role?
    public var disabled: Bool?
    public var prefix: String?
    public var limit = 50
    public var after: String?
}

/// Every change to accounts, for the API and `manage-passwords` alike, so they cannot disagree:
/// the password rules, the last-admin rule, the token-version bump that ends sessions and
/// tokens, and the audit record in the same transaction as the change.
public struct AccountService: Sendable {
    let database: Database
    let hasher: PasswordHasher
    let sessionLifetime: Int
    /// This replica's memory of signed-in users: emptied by every account change made here, so
    /// the change holds on this replica's next request without waiting for PostgreSQL's
    /// notification (which the other replicas act on).
    let signedInUsers: SignedInUsers?

    public init(database: Database, hasher: PasswordHasher, sessionLifetime: Int = 1_209_600) {
        self.init(database: database, hasher: hasher, sessionLifetime: sessionLifetime, signedInUsers: nil)
    }

    init(database: Database, hasher: PasswordHasher, sessionLifetime: Int = 1_209_600, signedInUsers: SignedInUsers?) {
        self.database = database
        self.hasher = hasher
        self.sessionLifetime = sessionLifetime
        self.signedInUsers = signedInUsers
    }

    /// A transaction that may change users. Emptied after it whatever the outcome: a commit
    /// whose answer was lost may still have changed them.
    func changing<T: Sendable>(logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        defer { signedInUsers?.changed(id: nil) }
        return try await database.transaction(logger: logger, body)
    }

    static let columns = "id, username, role, disabled, created_at, password_changed_at, last_login_at"

    static func view(_ row: PostgresRow) throws -> UserView {
        let (id, username, role, disabled, created, changed, lastLogin) = try row.decode((Int64, String, String, Bool, Date, Date, Date?).self)
        return UserView(id: id, username: username, role: Role(rawValue: role) ?? .requester, disabled: disabled,
                        created_at: created, password_changed_at: changed, last_login_at: lastLogin)
    }

    static func one(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> UserView? {
        var found: UserView?
        for try await row in try await connection.collect(query, logger: logger) where found == nil {
            found = try view(row)
        }
        return found
    }

    // MARK: Reading

    public func list(_ filter: UserListFilter, logger: Logger) async throws -> (users: [UserView], next: String?) {
        // A prefix match with LIKE needs its wildcards escaped.
        let pattern = filter.prefix.map { $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%" }
        var users: [UserView] = try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                SELECT \(unescaped: Self.columns) FROM users
                WHERE (\(filter.role?.rawValue)::text IS NULL OR role = \(filter.role?.rawValue))
                  AND (\(filter.disabled)::boolean IS NULL OR disabled = \(filter.disabled))
                  AND (\(pattern)::text IS NULL OR username LIKE \(pattern))
                  AND (\(filter.after)::text IS NULL OR username > \(filter.after))
                ORDER BY username
                LIMIT \(filter.limit + 1)
                """,
                logger: logger
            )
            var users: [UserView] = []
            for try await row in rows { users.append(try Self.view(row)) }
            return users
        }
        var next: String?
        if users.count > filter.limit {
            users.removeLast()
            next = users.last?.username
        }
        return (users, next)
    }

    public func get(id: Int64, logger: Logger) async throws -> UserView {
        let found = try await database.withConnection(logger: logger) { connection in
            try await Self.one("SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id)", on: connection, logger: logger)
        }
        guard let found else { throw AccountError.notFound }
        return found
    }

    // MARK: Creating and changing

    /// Creates a user; without `password`, generates one and returns it (shown once).
    public func create(username: String, role: Role, password: String?, actor: AuditActor, logger: Logger) async throws -> (UserView, generated: String?) {
        if let problem = UsernamePolicy.check(username) { throw AccountError.invalid([FieldError(field: "username", message: problem)]) }
        let generated = password == nil ? PasswordPolicy.generate() : nil
        let chosen = password ?? generated!
        if let problem = PasswordPolicy.check(chosen, username: username) {
            throw AccountError.invalid([FieldError(field: "password", message: problem)])
        }
        let hash = try await hasher.hash(chosen)
        do {
            let user = try await changing(logger: logger) { connection in
                let user = try await Self.insert(username: username, role: role, hash: hash, on: connection, logger: logger)
                try await Audit.record("user.created", target: .user, id: user.id, actor: actor, note: "role \(role.rawValue)", on: connection, logger: logger)
                return user
            }
            return (user, generated)
        } catch DatabaseError.constraint(sqlState: "23505", _) {
            throw AccountError.usernameTaken(username)
        }
    }

    static func insert(username: String, role: Role, hash: String, on connection: PostgresConnection, logger: Logger) async throws -> UserView {
        guard let user = try await one(
            "INSERT INTO users (username, password_hash, role) VALUES (\(username), \(hash), \(role.rawValue)) RETURNING \(unescaped: columns)",
            on: connection, logger: logger
        ) else { throw DatabaseError.unexpected(sqlState: "-", message: "insert returned no row") }
        // Every creation (API, import, manage-passwords) comes through here.
        try await Outbox.record(.userCreated, user: user, on: connection, logger: logger)
        return user
    }

    /// Role and/or disabled (merge-patch). Anything changed bumps the token version and ends
    /// the user's sessions; the last enabled admin is never disabled or demoted.
    public func update(id: Int64, role: Role?, disabled: Bool?, actor: AuditActor, logger: Logger) async throws -> UserView {
        try await changing(logger: logger) { connection in
            try await Self.update(id: id, role: role, disabled: disabled, actor: actor, on: connection, logger: logger)
        }
    }

    static func update(id: Int64, role: Role?, disabled: Bool?, actor: AuditActor, on connection: PostgresConnection, logger: Logger) async throws -> UserView {
        guard let current = try await one("SELECT \(unescaped: columns) FROM users WHERE id = \(id) FOR UPDATE", on: connection, logger: logger) else {
            throw AccountError.notFound
        }
        let newRole = role ?? current.role
        let newDisabled = disabled ?? current.disabled
        guard newRole != current.role || newDisabled != current.disabled else { return current }
        if current.role == .admin, !current.disabled, newRole != .admin || newDisabled {
            try await ensureAnotherEnabledAdmin(than: id, on: connection, logger: logger)
        }
        guard let updated = try await one(
            """
            UPDATE users SET role = \(newRole.rawValue), disabled = \(newDisabled), token_version = token_version + 1
            WHERE id = \(id) RETURNING \(unescaped: columns)
            """,
            on: connection, logger: logger
        ) else { throw AccountError.notFound }
        try await SessionStore.endAll(userID: id, on: connection, logger: logger)
        var changes: [String] = []
        if newRole != current.role { changes.append("role \(current.role.rawValue) → \(newRole.rawValue)") }
        if newDisabled != current.disabled { changes.append(newDisabled ? "disabled" : "enabled") }
        try await Audit.record("user.updated", target: .user, id: id, actor: actor, note: changes.joined(separator: ", "), on: connection, logger: logger)
        try await Outbox.record(.userUpdated, user: updated, on: connection, logger: logger)
        return updated
    }

    /// Locks every enabled admin (in id order, so concurrent demotions queue) and refuses when
    /// `id` is the only one.
    static func ensureAnotherEnabledAdmin(than id: Int64, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.collect(
            "SELECT id FROM users WHERE role = 'admin' AND NOT disabled ORDER BY id FOR UPDATE",
            logger: logger
        )
        var others = 0
        for try await admin in rows.decode(Int64.self) where admin != id { others += 1 }
        guard others > 0 else { throw AccountError.lastAdmin }
    }

    /// A new random password (returned once); ends the user's sessions.
    public func resetPassword(id: Int64, actor: AuditActor, logger: Logger) async throws -> String {
        let password = PasswordPolicy.generate()
        let hash = try await hasher.hash(password)
        try await changing(logger: logger) { connection in
            guard try await Self.replacePassword(id: id, hash: hash, on: connection, logger: logger) else { throw AccountError.notFound }
            try await Audit.record("user.password_reset", target: .user, id: id, actor: actor, on: connection, logger: logger)
        }
        return password
    }

    static func replacePassword(id: Int64, hash: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.collect(
            """
            UPDATE users SET password_hash = \(hash), password_changed_at = now(), token_version = token_version + 1
            WHERE id = \(id) RETURNING id
            """,
            logger: logger
        )
        var changed = false
        for try await _ in rows.decode(Int64.self) { changed = true }
        if changed { try await SessionStore.endAll(userID: id, on: connection, logger: logger) }
        return changed
    }

    /// The caller's own new password (the old one was checked by the caller): every other session
    /// and token ends, and a new session begins for this one.
    func changeOwnPassword(user: UserRecord, to password: String, actor: AuditActor, logger: Logger) async throws -> (UserRecord, SessionStore.Issued) {
        if let problem = PasswordPolicy.check(password, username: user.username) {
            throw AccountError.invalid([FieldError(field: "new_password", message: problem)])
        }
        let hash = try await hasher.hash(password)
        let lifetime = sessionLifetime
        return try await changing(logger: logger) { connection in
            guard try await Self.replacePassword(id: user.id, hash: hash, on: connection, logger: logger) else { throw AccountError.notFound }
            try await Audit.record("user.password_changed", target: .user, id: user.id, actor: actor, on: connection, logger: logger)
            let rows = try await connection.collect("SELECT token_version FROM users WHERE id = \(user.id)", logger: logger)
            var version = user.tokenVersion + 1
            for try await current in rows.decode(Int.self) { version = current }
            let issued = try await SessionStore.start(userID: user.id, tokenVersion: version, lifetime: lifetime, on: connection, logger: logger)
            let updated = UserRecord(id: user.id, username: user.username, passwordHash: hash, role: user.role, disabled: user.disabled,
                                     tokenVersion: version, passwordChangedAt: Date())
            return (updated, issued)
        }
    }

    /// Ends every session of the user and every access token (the version moves on).
    func logout(userID: Int64, actor: AuditActor, logger: Logger) async throws {
        try await changing(logger: logger) { connection in
            try await drain("UPDATE users SET token_version = token_version + 1 WHERE id = \(userID)", on: connection, logger: logger)
            try await SessionStore.endAll(userID: userID, on: connection, logger: logger)
            try await Audit.record("user.logged_out", target: .user, id: userID, actor: actor, on: connection, logger: logger)
        }
    }

    // MARK: For manage-passwords

    /// Creates the user or replaces its password (and role when given).
    public func setPassword(username: String, role: Role?, password: String, actor: AuditActor, logger: Logger) async throws -> (UserView, created: Bool) {
        if let problem = UsernamePolicy.check(username) { throw AccountError.invalid([FieldError(field: "username", message: problem)]) }
        if let problem = PasswordPolicy.check(password, username: username) {
            throw AccountError.invalid([FieldError(field: "password", message: problem)])
        }
        let hash = try await hasher.hash(password)
        return try await changing(logger: logger) { connection in
            try await Self.setPassword(username: username, role: role, hash: hash, actor: actor, on: connection, logger: logger)
        }
    }

    static func setPassword(username: String, role: Role?, hash: String, actor: AuditActor, on connection: PostgresConnection, logger: Logger) async throws -> (UserView, created: Bool) {
        guard let existing = try await one("SELECT \(unescaped: columns) FROM users WHERE username = \(username) FOR UPDATE", on: connection, logger: logger) else {
            guard let role else { throw AccountError.notFound }
            let user = try await insert(username: username, role: role, hash: hash, on: connection, logger: logger)
            try await Audit.record("user.created", target: .user, id: user.id, actor: actor, note: "role \(role.rawValue)", on: connection, logger: logger)
            return (user, true)
        }
        if let role, role != existing.role {
            _ = try await update(id: existing.id, role: role, disabled: nil, actor: actor, on: connection, logger: logger)
        }
        _ = try await replacePassword(id: existing.id, hash: hash, on: connection, logger: logger)
        try await Audit.record("user.password_reset", target: .user, id: existing.id, actor: actor, on: connection, logger: logger)
        guard let user = try await one("SELECT \(unescaped: columns) FROM users WHERE id = \(existing.id)", on: connection, logger: logger) else {
            throw AccountError.notFound
        }
        return (user, false)
    }

    public func setDisabled(username: String, disabled: Bool, actor: AuditActor, logger: Logger) async throws -> UserView {
        try await changing(logger: logger) { connection in
            guard let user = try await Self.one("SELECT \(unescaped: Self.columns) FROM users WHERE username = \(username)", on: connection, logger: logger) else {
                throw AccountError.notFound
            }
            return try await Self.update(id: user.id, role: nil, disabled: disabled, actor: actor, on: connection, logger: logger)
        }
    }

    /// New random passwords for every entry, in one transaction: all or nothing.
    public func rotate(_ entries: [(username: String, role: Role)], actor: AuditActor, logger: Logger) async throws -> [(username: String, password: String)] {
        var passwords: [(username: String, password: String)] = []
        var hashes: [String] = []
        for entry in entries {
            let password = PasswordPolicy.generate()
            passwords.append((entry.username, password))
            hashes.append(try await hasher.hash(password))
        }
        let hashed = hashes
        try await changing(logger: logger) { connection in
            for (entry, hash) in zip(entries, hashed) {
                _ = try await Self.setPassword(username: entry.username, role: entry.role, hash: hash, actor: actor, on: connection, logger: logger)
            }
        }
        return passwords
    }
}

extension AccountError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .notFound: "no such user"
        case .usernameTaken(let name): "\(name) exists already"
        case .lastAdmin: "refused: that would leave no enabled admin"
        case .invalid(let errors): errors.map { "\($0.field) \($0.message)" }.joined(separator: "; ")
        }
    }
}
