import Foundation
import Logging
import PostgresNIO

/// Runs `body` with a running `PostgresClient`, for one-shot programs (the CLIs, tests).
/// Fails within `connectTimeout` when the database cannot be reached, naming the cause.
public func withPostgresClient<T: Sendable>(
    _ url: DatabaseURL,
    logger: Logger,
    connectTimeout: Duration = .seconds(5),
    _ body: @escaping @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    try await probe(url, logger: logger, timeout: connectTimeout)
    let client = PostgresClient(configuration: url.clientConfiguration(connectTimeout: connectTimeout), backgroundLogger: quiet(logger))
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(client)
    }
}

/// One direct connection first: the pool retries failures quietly, but an operator wants the
/// real reason (wrong password, unknown database, TLS refused) at once.
func probe(_ url: DatabaseURL, logger: Logger, timeout: Duration) async throws {
    do {
        let configuration = try url.connectionConfiguration(connectTimeout: timeout)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        defer { connection.closeInBackground() }
        try await withDeadline(timeout, closing: connection) {
            try await drain("SELECT 1", on: connection, logger: logger)
        }
    } catch is DeadlineExceeded {
        throw DatabaseUnreachable(url: url, reason: "no answer within \(timeout.components.seconds) s")
    } catch {
        throw DatabaseUnreachable(url: url, reason: DatabaseUnreachable.describe(error, timeout: timeout))
    }
}

/// The database could not be reached. Its description names the URL without its password.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let url: DatabaseURL
    public let reason: String

    public var description: String { "cannot reach the database at \(url): \(reason)" }

    static func describe(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? PSQLError, error.code == .connectionError,
            let underlying = error.underlying as? ChannelError, case .connectTimeout = underlying
        {
            return "no answer within \(timeout.components.seconds) s"
        }
        if let translated = DatabaseError.translating(error) { return translated.description }
        return "\(type(of: error))"
    }
}

/// Runs `body` with a `Database` over a running pool, for one-shot programs: the same layer
/// as the server (deadline, retries, one error type), with a longer deadline.
public func withDatabase<T: Sendable>(
    _ url: DatabaseURL,
    logger: Logger,
    timeout: Duration = .seconds(60),
    _ body: @escaping @Sendable (Database) async throws -> T
) async throws -> T {
    let connectTimeout = Duration.seconds(5)
    try await probe(url, logger: logger, timeout: connectTimeout)
    let pool = DatabasePool(
        configuration: url.clientConfiguration(connectTimeout: connectTimeout),
        probe: try url.connectionConfiguration(connectTimeout: connectTimeout),
        logger: quiet(logger)
    )
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await pool.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(Database(pool: pool, timeout: timeout))
    }
}

/// A one-shot program's pool logs errors only: its operator reads one line per failure, and the
/// pool's own warnings (a lease asked for while `run()` is still starting) are noise there.
private func quiet(_ logger: Logger) -> Logger {
    var logger = logger
    logger.logLevel = max(logger.logLevel, .error)
    return logger
}
