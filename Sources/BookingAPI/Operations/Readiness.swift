import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// `/ping`: is the database reachable, and is every shipped migration applied unchanged?
///
/// It asks PostgreSQL over a connection of its own, not one from the pool, so a pool busy with
/// requests (or waiting on a lock) does not read as "unreachable"; concurrent checks share one
/// round trip.
struct Readiness: Sendable {
    let connection: ReadinessConnection
    let migrationsDirectory: String
    let logger: Logger

    enum Outcome: Sendable {
        case ready(MigrationReport)
        case notCurrent(MigrationReport)
        case unreachable
        case noMigrations(String)
    }

    func check() async -> Outcome {
        let directory: MigrationDirectory
        do {
            // Read on every check so a release that ships a new file is seen at once.
            directory = try MigrationDirectory.load(migrationsDirectory)
        } catch {
            return .noMigrations(error.description)
        }
        guard let applied = await connection.appliedMigrations() else {
            Gauge(label: MetricNames.schemaCurrent).record(0)
            return .unreachable
        }
        let report = MigrationReport(shipped: directory.files, applied: applied)
        Gauge(label: MetricNames.schemaCurrent).record(report.isCurrent ? 1 : 0)
        return report.isCurrent ? .ready(report) : .notCurrent(report)
    }
}

/// The one connection readiness uses, opened on demand and dropped on any failure.
actor ReadinessConnection {
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    /// The contract: answer within 2 s, whatever the database does.
    private let timeout: Duration
    private var connection: PostgresConnection?
    private var inflight: Task<[AppliedMigration]?, Never>?

    init(url: DatabaseURL, logger: Logger, timeout: Duration = .milliseconds(1500)) throws {
        self.configuration = try url.connectionConfiguration(connectTimeout: timeout)
        self.logger = logger
        self.timeout = timeout
    }

    /// The applied migrations, or nil when PostgreSQL did not answer within the timeout.
    func appliedMigrations() async -> [AppliedMigration]? {
        if let inflight { return await inflight.value }
        let task = Task { await self.fetch() }
        inflight = task
        let result = await task.value
        inflight = nil
        return result
    }

    private func fetch() async -> [AppliedMigration]? {
        let existing = connection.flatMap { $0.isClosed ? nil : $0 }
        let slot = ConnectionSlot()
        let configuration = self.configuration
        let logger = self.logger
        do {
            let (opened, applied) = try await withDeadline(timeout, slot: slot) {
                let opened: PostgresConnection
                if let existing {
                    opened = existing
                } else {
                    opened = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                }
                slot.hold(opened)
                return (opened, try await MigrationRunner.appliedMigrations(on: opened, logger: logger))
            }
            connection = opened
            return applied
        } catch {
            slot.close()
            existing?.closeInBackground()
            connection = nil
            logger.warning("readiness: database unreachable", metadata: ["error": .string(DatabaseError.translating(error)?.description ?? "\(type(of: error))")])
            return nil
        }
    }

    func close() async {
        try? await connection?.close()
        connection = nil
    }
}

extension ReadinessConnection: Service {
    /// Closes the connection when the service shuts down.
    func run() async {
        try? await gracefulShutdown()
        await close()
    }
}
