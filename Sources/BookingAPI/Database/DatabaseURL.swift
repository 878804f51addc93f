import Foundation
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

    public var clientConfiguration: PostgresClient.Configuration { clientConfiguration(fixedPoolSize: nil) }

    /// With `fixedPoolSize`, the pool keeps exactly that many connections and sends no
    /// keep-alive queries. Measured (BENCHMARKS.md): postgres-nio's idle and keep-alive timers
    /// each hold about 0.8 KiB per query until they fire 30–60 s later, which under load is
    /// hundreds of MiB; a fixed pool schedules neither. A dead connection is still noticed on
    /// its next use and replaced.
    public func clientConfiguration(fixedPoolSize: Int?) -> PostgresClient.Configuration {
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
        // Readiness must answer within 2 s, so a connection attempt may not take longer.
        configuration.options.connectTimeout = .milliseconds(1500)
        if let fixedPoolSize {
            configuration.options.minimumConnections = fixedPoolSize
            configuration.options.maximumConnections = fixedPoolSize
            configuration.options.keepAliveBehavior = nil
        }
        return configuration
    }
}
