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
    try await probe(url, logger: logger, timeout: connectTimeout)
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

/// One direct connection first: the pool retries failures quietly, but an operator wants the
/// real reason (wrong password, unknown database) at once. TLS URLs are left to the pool.
func probe(_ url: DatabaseURL, logger: Logger, timeout: Duration) async throws {
    let configuration: PostgresConnection.Configuration
    if let socket = url.socketDirectory {
        configuration = .init(unixSocketPath: "\(socket)/.s.PGSQL.\(url.port)", username: url.username, password: url.password, database: url.database)
    } else if url.tlsMode == .disable {
        configuration = .init(host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: .disable)
    } else {
        return
    }
    do {
        let connection = try await withTimeout(timeout) {
            try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        }
        try? await connection.close()
    } catch is TimeoutError {
        throw DatabaseUnreachable(url: url, reason: "no answer within \(timeout.components.seconds) s")
    } catch let error as PSQLError {
        throw DatabaseUnreachable(url: url, reason: DatabaseUnreachable.describe(error))
    } catch {
        throw DatabaseUnreachable(url: url, reason: "\(type(of: error))")
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
