import Crypto
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import BookingAPI

/// Where the tests find PostgreSQL and the built programs; `scripts/test` sets all of it.
enum TestEnvironment {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var migrationsDirectory: String { packageRoot.appendingPathComponent("Migrations").path }

    static var binDirectory: String {
        ProcessInfo.processInfo.environment["BOOKING_BIN_DIR"] ?? packageRoot.appendingPathComponent(".build/debug").path
    }

    static func serverURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"] else {
            throw TestSetupError("TEST_DATABASE_URL is not set: run the tests with scripts/test")
        }
        return try DatabaseURL(text, variable: "TEST_DATABASE_URL")
    }

    static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = .warning
        return logger
    }()
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh, empty database for one test, on the throwaway cluster.
struct TestDatabase {
    let url: DatabaseURL

    static func create(migrated: Bool = true) async throws -> TestDatabase {
        let server = try TestEnvironment.serverURL()
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await withPostgresClient(server, logger: TestEnvironment.logger) { client in
            // A database name cannot be a bound parameter; this one is made here from a UUID.
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: TestEnvironment.logger)
        }
        var url = server
        url.database = name
        let database = TestDatabase(url: url)
        if migrated { try await database.migrate() }
        return database
    }

    func migrate(_ directory: String = TestEnvironment.migrationsDirectory) async throws {
        let files = try MigrationDirectory.load(directory)
        _ = try await withClient { client in
            try await MigrationRunner(client: client, logger: TestEnvironment.logger).up(files)
        }
    }

    func withClient<T: Sendable>(_ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await withPostgresClient(url, logger: TestEnvironment.logger, body)
    }

    /// The service's database layer over this database, as the CLIs use it.
    func withDatabase<T: Sendable>(_ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        try await BookingAPI.withDatabase(url, logger: TestEnvironment.logger, body)
    }

    /// The first column of the first row of `sql` (a constant written in a test).
    func scalar<T: PostgresDecodable & Sendable>(_ sql: String, as type: T.Type = T.self) async throws -> T? {
        try await withClient { client in
            for try await value in try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestEnvironment.logger).decode(T.self) {
                return value
            }
            return nil
        }
    }

    func execute(_ query: PostgresQuery) async throws {
        try await withClient { client in
            for try await _ in try await client.query(query, logger: TestEnvironment.logger) {}
        }
    }

    /// `DATABASE_URL` for a child process.
    var connectionString: String {
        "postgres://\(url.username):\(url.password ?? "")@\(url.host):\(url.port)/\(url.database)?sslmode=disable"
    }
}
