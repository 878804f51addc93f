import Foundation
import Logging
import Metrics
import PostgresNIO

/// `/ping`: is the database reachable, and is every shipped migration applied unchanged?
struct Readiness: Sendable {
    let client: PostgresClient
    let migrationsDirectory: String
    let logger: Logger
    /// The contract: answer within 2 s, whatever the database does.
    var timeout: Duration = .milliseconds(1500)

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
        let runner = MigrationRunner(client: client, logger: logger)
        do {
            let report = try await withTimeout(timeout) { try await runner.report(for: directory) }
            Gauge(label: MetricNames.schemaCurrent).record(report.isCurrent ? 1 : 0)
            return report.isCurrent ? .ready(report) : .notCurrent(report)
        } catch {
            Gauge(label: MetricNames.schemaCurrent).record(0)
            logger.warning("readiness: database unreachable", metadata: ["error": .string("\(type(of: error))")])
            return .unreachable
        }
    }
}
