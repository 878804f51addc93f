import Foundation
import NIOCore
import NIOSSL
import PostgresNIO

/// A parsed `DATABASE_URL`: `postgres://user:password@host:port/database?sslmode=disable|prefer|require`.
/// A `host` query parameter naming a directory selects a Unix socket, as libpq does
/// (`postgres://user@/db?host=/path/to/socket-dir&port=5433`).
public struct DatabaseURL: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, prefer, require }

    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var socketDirectory: String?
    public var tlsMode: TLSMode

    public init(_ text: String, variable: String = "DATABASE_URL") throws(ConfigurationError) {
        func bad(_ why: String) -> ConfigurationError {
            ConfigurationError(variable: variable, reason: "is malformed: \(why)")
        }
        guard let components = URLComponents(string: text) else { throw bad("not a URL") }
        guard components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw bad("scheme must be postgres:// or postgresql://")
        }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") },
            uniquingKeysWith: { _, last in last }
        )
        guard let user = components.user, !user.isEmpty else { throw bad("no user name") }
        username = user.removingPercentEncoding ?? user
        password = components.password.map { $0.removingPercentEncoding ?? $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty else { throw bad("no database name") }
        database = path.removingPercentEncoding ?? path
        if let portText = query["port"] ?? components.port.map(String.init) {
            guard let port = Int(portText), (1...65535).contains(port) else { throw bad("port out of range") }
            self.port = port
        } else {
            port = 5432
        }
        if let socket = query["host"], socket.hasPrefix("/") {
            socketDirectory = socket
            host = components.host ?? ""
        } else {
            socketDirectory = nil
            guard let host = components.host, !host.isEmpty else { throw bad("no host") }
            self.host = host
        }
        let mode = query["sslmode"] ?? "prefer"
        switch mode {
        case "disable", "allow": tlsMode = .disable
        case "prefer": tlsMode = .prefer
        case "require", "verify-ca", "verify-full": tlsMode = .require
        default: throw bad("unknown sslmode")
        }
    }

    /// The URL with its password replaced, safe for logs and CLI output.
    public var description: String {
        let credentials = password == nil ? username : "\(username):***"
        if let socketDirectory {
            return "postgres://\(credentials)@/\(database)?host=\(socketDirectory)&port=\(port)"
        }
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    /// The server's pool. `minimumConnections` stays 0 (see `DatabasePool`); no keep-alive
    /// queries, whose timers held memory per query (BENCHMARKS.md). PostgreSQL enforces the
    /// deadline too, and notices a vanished client by TCP keepalive.
    func serverPoolConfiguration(maximumConnections: Int, timeout: Duration) -> PostgresClient.Configuration {
        var configuration = clientConfiguration(connectTimeout: .milliseconds(1500))
        configuration.options.minimumConnections = 0
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectionIdleTimeout = .seconds(10)
        configuration.options.keepAliveBehavior = nil
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        configuration.options.additionalStartupParameters = [
            ("application_name", "booking-server"),
            ("statement_timeout", String(milliseconds)),
            ("lock_timeout", String(milliseconds)),
            ("idle_in_transaction_session_timeout", String(2 * milliseconds)),
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
        ]
        return configuration
    }

    /// A pool for one-shot programs (the CLIs, tests): no deadlines on statements, since a
    /// migration may run for long.
    public var clientConfiguration: PostgresClient.Configuration { clientConfiguration(connectTimeout: .seconds(5)) }

    func clientConfiguration(connectTimeout: Duration) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)",
                username: username,
                password: password,
                database: database
            )
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch tlsMode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(.makeClientConfiguration())
            case .require: tls = .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = connectTimeout
        return configuration
    }

    /// One direct connection, as the pool would make it. Its connect timeout covers the TCP
    /// connect, TLS and authentication.
    func connectionConfiguration(connectTimeout: Duration) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: username, password: password, database: database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch tlsMode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = .init(connectTimeout)
        return configuration
    }
}
