import Foundation
import Logging
import PostgresNIO

/// Applies and inspects migrations. Shared by `migration-runner` and the server's `/ping`.
public struct MigrationRunner: Sendable {
    /// Session-level advisory lock key that serialises concurrent runners ("booking" in ASCII).
    static let lockKey: Int64 = 0x62_6F_6F_6B_69_6E_67

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// What is applied, compared with `directory`.
    public func report(for directory: MigrationDirectory) async throws -> MigrationReport {
        let applied = try await client.withConnection { connection in
            try await Self.appliedMigrations(on: connection, logger: logger)
        }
        return MigrationReport(shipped: directory.files, applied: applied)
    }

    /// Applies every pending file in version order, each in its own transaction unless it is
    /// marked `-- migrate:no-transaction`, holding the advisory lock for the whole run.
    /// Returns the files applied (or, with `dryRun`, those that would be).
    public func up(
        _ directory: MigrationDirectory,
        dryRun: Bool = false,
        lockTimeout: Duration = .seconds(60),
        onApplied: @Sendable (MigrationFile, Duration) -> Void = { _, _ in }
    ) async throws -> [MigrationFile] {
        try await client.withConnection { connection in
            try await Self.acquireLock(on: connection, timeout: lockTimeout, logger: logger)
            do {
                let result = try await applyPending(directory, on: connection, dryRun: dryRun, onApplied: onApplied)
                try await Self.releaseLock(on: connection, logger: logger)
                return result
            } catch {
                // The lock is per session; a broken connection releases it by itself.
                try? await Self.releaseLock(on: connection, logger: logger)
                throw error
            }
        }
    }

    private func applyPending(
        _ directory: MigrationDirectory,
        on connection: PostgresConnection,
        dryRun: Bool,
        onApplied: @Sendable (MigrationFile, Duration) -> Void
    ) async throws -> [MigrationFile] {
        if !dryRun {
            try await Self.run(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version text PRIMARY KEY CHECK (version ~ '^[0-9]{4}$'),
                    name text NOT NULL,
                    checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    duration_ms integer NOT NULL CHECK (duration_ms >= 0)
                )
                """,
                on: connection,
                logger: logger
            )
        }
        let report = MigrationReport(
            shipped: directory.files,
            applied: try await Self.appliedMigrations(on: connection, logger: logger)
        )
        guard report.drift.isEmpty else { throw MigrationError.drift(report.drift) }
        let pending = Set(report.pending)
        let files = directory.files.filter { pending.contains($0.version) }
        if dryRun { return files }
        for file in files {
            let clock = ContinuousClock()
            let started = clock.now
            try await apply(file, on: connection)
            let elapsed = clock.now - started
            onApplied(file, elapsed)
        }
        return files
    }

    private func apply(_ file: MigrationFile, on connection: PostgresConnection) async throws {
        let statements = SQLStatementSplitter.split(file.sql)
        let clock = ContinuousClock()
        let started = clock.now
        let transactional = !file.runsOutsideTransaction
        if transactional { try await Self.run("BEGIN", on: connection, logger: logger) }
        do {
            for statement in statements {
                do {
                    // Migration files are trusted operator input, not request data.
                    try await Self.run(PostgresQuery(unsafeSQL: statement.text), on: connection, logger: logger)
                } catch let error as PSQLError {
                    throw MigrationError.failed(
                        file: file.path,
                        line: Self.line(of: error, in: statement),
                        message: Self.describe(error)
                    )
                }
            }
            let elapsed = clock.now - started
            let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
            try await Self.run(
                """
                INSERT INTO schema_migrations (version, name, checksum, duration_ms)
                VALUES (\(file.version), \(file.name), \(file.checksum), \(milliseconds))
                """,
                on: connection,
                logger: logger
            )
            if transactional { try await Self.run("COMMIT", on: connection, logger: logger) }
        } catch {
            if transactional { try? await Self.run("ROLLBACK", on: connection, logger: logger) }
            if let error = error as? PSQLError {
                throw MigrationError.failed(file: file.path, line: nil, message: Self.describe(error))
            }
            throw error
        }
    }

    // MARK: - Helpers

    static func appliedMigrations(on connection: PostgresConnection, logger: Logger) async throws -> [AppliedMigration] {
        let exists: PostgresQuery = "SELECT to_regclass('schema_migrations') IS NOT NULL"
        guard try await firstBool(exists, on: connection, logger: logger) else { return [] }
        var applied: [AppliedMigration] = []
        let select: PostgresQuery = "SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations ORDER BY version"
        let rows = try await connection.collect(select, logger: logger)
        for try await (version, name, checksum, appliedAt, duration) in rows.decode((String, String, String, Date, Int).self) {
            applied.append(.init(version: version, name: name, checksum: checksum, appliedAt: appliedAt, durationMilliseconds: duration))
        }
        return applied
    }

    static func acquireLock(on connection: PostgresConnection, timeout: Duration, logger: Logger) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if try await firstBool("SELECT pg_try_advisory_lock(\(lockKey))", on: connection, logger: logger) { return }
            guard clock.now < deadline else {
                throw MigrationError.lockTimeout(seconds: Int(timeout.components.seconds))
            }
            logger.info("waiting for another migration-runner to finish")
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func releaseLock(on connection: PostgresConnection, logger: Logger) async throws {
        try await run("SELECT pg_advisory_unlock(\(lockKey))", on: connection, logger: logger)
    }

    static func firstBool(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        var result = false
        for try await value in try await connection.collect(query, logger: logger).decode(Bool.self) { result = value }
        return result
    }

    /// Runs a statement and drains its rows, so errors raised while streaming surface here.
    static func run(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.collect(query, logger: logger)
        for try await _ in rows {}
    }

    static func describe(_ error: PSQLError) -> String {
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return message + state
        }
        return "database error: \(error.code)"
    }

    /// The file line of a server error's character position, when PostgreSQL gave one.
    static func line(of error: PSQLError, in statement: SQLStatementSplitter.Statement) -> Int? {
        guard let text = error.serverInfo?[.position], let position = Int(text), position > 0 else {
            return statement.line
        }
        let prefix = statement.text.prefix(position - 1)
        return statement.line + prefix.filter { $0 == "\n" }.count
    }
}
