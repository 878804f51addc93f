import Foundation

/// A migration recorded in `schema_migrations`.
public struct AppliedMigration: Sendable, Equatable {
    public let version: String
    public let name: String
    public let checksum: String
    public let appliedAt: Date
    public let durationMilliseconds: Int
}

/// The shipped files compared with what the database has applied.
public struct MigrationReport: Sendable {
    public let shipped: [MigrationFile]
    public let applied: [AppliedMigration]

    public init(shipped: [MigrationFile], applied: [AppliedMigration]) {
        self.shipped = shipped
        self.applied = applied
    }

    /// Shipped versions not yet applied.
    public var pending: [String] {
        let done = Set(applied.map(\.version))
        return shipped.map(\.version).filter { !done.contains($0) }
    }

    /// Applied versions whose file changed since.
    public var changed: [String] {
        let files = Dictionary(uniqueKeysWithValues: shipped.map { ($0.version, $0.checksum) })
        return applied.filter { migration in
            files[migration.version].map { $0 != migration.checksum } ?? false
        }.map(\.version)
    }

    /// Applied versions whose file is no longer shipped.
    public var missing: [String] {
        let files = Set(shipped.map(\.version))
        return applied.map(\.version).filter { !files.contains($0) }
    }

    public var drift: [String] { (changed + missing).sorted() }

    /// Highest applied version, or nil on an empty database.
    public var current: String? { applied.map(\.version).max() }
    /// Highest shipped version.
    public var latest: String? { shipped.map(\.version).max() }

    public var isCurrent: Bool { pending.isEmpty && drift.isEmpty }
}
