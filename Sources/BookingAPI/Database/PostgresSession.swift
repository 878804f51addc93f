import Foundation
import Logging
import PostgresNIO

/// Runs `body` with a running `PostgresClient`, for one-shot programs (the CLIs, tests).
/// Fails within `connectTimeout` when the database cannot be reached.
public func withPostgresClient<T: Sendable>(
    _ url: DatabaseURL,
    logger: Logger,
    connectTimeout: Duration = .seconds(10),
    _ body: @escaping @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    let client = PostgresClient(configuration: url.clientConfiguration, backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        do {
            try await withTimeout(connectTimeout) {
                try await client.query("SELECT 1", logger: logger)
            }
        } catch is TimeoutError {
            throw DatabaseUnreachable(url: url, reason: "no answer within \(connectTimeout.components.seconds) s")
        } catch let error as PSQLError {
            throw DatabaseUnreachable(url: url, reason: DatabaseUnreachable.describe(error))
        }
        return try await body(client)
    }
}

/// The database could not be reached. Its description names the URL without its password.
public struct DatabaseUnreachable: Error, CustomStringConvertible {
    public let url: DatabaseURL
    public let reason: String

    public var description: String { "cannot reach the database at \(url): \(reason)" }

    static func describe(_ error: PSQLError) -> String {
        if let message = error.serverInfo?[.message] { return message }
        return "\(error.code)"
    }
}
