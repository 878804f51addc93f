import Foundation
import Logging

public enum AppEnvironment: String, Sendable {
    case dev, test, prod
}

/// Everything `booking-server` reads from its environment. See the README's configuration table.
public struct AppConfiguration: Sendable {
    public var environment: AppEnvironment
    public var host: String
    public var port: Int
    public var database: DatabaseURL
    public var migrationsDirectory: String
    public var tokens: TokenConfiguration
    public var hashing: PasswordHashingConfiguration
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Connections the server keeps open to PostgreSQL.
    public var databasePoolSize: Int = 10
    /// First block after 5 failed logins; doubles per further failure, up to 15 minutes.
    public var loginThrottleBaseSeconds: Int = 30
    /// Waiting for a pooled connection and running the statements, together.
    public var databaseTimeout: Duration = .seconds(5)
    /// A connection that sends nothing this long is closed.
    public var httpIdleTimeout: Duration = .seconds(60)
    /// A request's head and body must arrive within this time of its first byte.
    public var httpReadTimeout: Duration = .seconds(10)
    /// Connections served at once; past it, new ones get a 503 and are closed.
    public var maxConnections: Int = AppConfiguration.defaultMaxConnections
    /// SIGTERM: in-flight requests get this long; then the process exits whatever is stuck.
    public var shutdownGrace: Duration = .seconds(10)
    /// How long a refresh token stays valid.
    public var refreshTokenLifetimeSeconds: Int = 1_209_600
    /// Peers whose `X-Forwarded-For` is believed (the load balancers).
    public var trustedProxies: [IPNetwork] = []
    /// Webhooks may go to loopback, private, link-local and multicast addresses, and over http.
    public var webhookAllowPrivateNetworks = false
    /// The first webhook retry waits about this long (tests shorten it; not configurable).
    var webhookRetryBase: Duration = .seconds(5)
    /// The dispatcher looks for due deliveries this often besides being woken by NOTIFY.
    var webhookPollInterval: Duration = .seconds(2)

    public init(
        environment: AppEnvironment = .dev,
        host: String = "127.0.0.1",
        port: Int = 8080,
        database: DatabaseURL,
        migrationsDirectory: String = "Migrations",
        tokens: TokenConfiguration,
        hashing: PasswordHashingConfiguration = .init(),
        logLevel: Logger.Level = .info,
        logFormat: LogFormat = .text,
        loginThrottleBaseSeconds: Int = 30,
        databasePoolSize: Int = 10
    ) {
        self.environment = environment
        self.host = host
        self.port = port
        self.database = database
        self.migrationsDirectory = migrationsDirectory
        self.tokens = tokens
        self.hashing = hashing
        self.logLevel = logLevel
        self.logFormat = logFormat
        self.loginThrottleBaseSeconds = loginThrottleBaseSeconds
        self.databasePoolSize = databasePoolSize
    }

    /// Every variable `load` reads (each also as `NAME_FILE`). Tests hold the README and the
    /// deployment manifests to this list.
    public static let variables = [
        "DATABASE_URL", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEYS", "JWT_ISSUER", "JWT_AUDIENCE", "ACCESS_TOKEN_TTL_SECONDS",
        "APP_ENV", "HOST", "PORT", "MIGRATIONS_DIR", "LOG_LEVEL", "LOG_FORMAT", "ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS",
        "ARGON2_PARALLELISM", "HASH_THREADS", "HASH_QUEUE_LIMIT", "LOGIN_THROTTLE_BASE_SECONDS", "DATABASE_POOL_SIZE",
        "DATABASE_TIMEOUT_SECONDS", "HTTP_IDLE_TIMEOUT_SECONDS", "HTTP_READ_TIMEOUT_SECONDS", "MAX_CONNECTIONS",
        "SHUTDOWN_GRACE_SECONDS", "TRUSTED_PROXIES", "REFRESH_TOKEN_TTL_SECONDS", "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
    ]

    /// Below the process's open-file limit, leaving room for PostgreSQL connections and logs.
    public static var defaultMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < 1_000_000 else { return 10_000 }
        return max(16, min(10_000, Int(limit.rlim_cur) - 128))
    }

    /// Reads and checks the whole configuration; the first problem stops start-up.
    public static func load(from reader: EnvironmentReader = .init()) throws(ConfigurationError) -> AppConfiguration {
        let environment: AppEnvironment
        if let text = try reader.value("APP_ENV") {
            guard let parsed = AppEnvironment(rawValue: text) else {
                throw ConfigurationError(variable: "APP_ENV", reason: "must be one of dev, test, prod")
            }
            environment = parsed
        } else {
            environment = .dev
        }
        let database = try DatabaseURL(try reader.required("DATABASE_URL"))
        let level: Logger.Level
        if let text = try reader.value("LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: text.lowercased()) else {
                throw ConfigurationError(variable: "LOG_LEVEL", reason: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            level = parsed
        } else {
            level = .info
        }
        let format: LogFormat
        if let text = try reader.value("LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: text) else {
                throw ConfigurationError(variable: "LOG_FORMAT", reason: "must be text or json")
            }
            format = parsed
        } else {
            format = .text
        }
        var configuration = AppConfiguration(
            environment: environment,
            host: try reader.value("HOST") ?? "127.0.0.1",
            port: try reader.integer("PORT", default: 8080, range: 0...65535),
            database: database,
            migrationsDirectory: try reader.value("MIGRATIONS_DIR") ?? "Migrations",
            tokens: try TokenConfiguration.load(from: reader, environment: environment),
            hashing: try PasswordHashingConfiguration.load(from: reader),
            logLevel: level,
            logFormat: format,
            loginThrottleBaseSeconds: try reader.integer("LOGIN_THROTTLE_BASE_SECONDS", default: 30, range: 1...900),
            databasePoolSize: try reader.integer("DATABASE_POOL_SIZE", default: 10, range: 1...200)
        )
        configuration.databaseTimeout = .seconds(try reader.integer("DATABASE_TIMEOUT_SECONDS", default: 5, range: 1...300))
        configuration.httpIdleTimeout = .seconds(try reader.integer("HTTP_IDLE_TIMEOUT_SECONDS", default: 60, range: 1...3600))
        configuration.httpReadTimeout = .seconds(try reader.integer("HTTP_READ_TIMEOUT_SECONDS", default: 10, range: 1...600))
        configuration.maxConnections = try reader.integer("MAX_CONNECTIONS", default: defaultMaxConnections, range: 1...1_000_000)
        configuration.refreshTokenLifetimeSeconds = try reader.integer("REFRESH_TOKEN_TTL_SECONDS", default: 1_209_600, range: 60...31_536_000)
        configuration.shutdownGrace = .seconds(try reader.integer("SHUTDOWN_GRACE_SECONDS", default: 10, range: 1...600))
        if let text = try reader.value("TRUSTED_PROXIES") {
            configuration.trustedProxies = try text.split(separator: ",").map { item throws(ConfigurationError) in
                guard let network = IPNetwork(String(item).trimmingCharacters(in: .whitespaces)) else {
                    throw ConfigurationError(variable: "TRUSTED_PROXIES", reason: "must be a comma-separated list of CIDR blocks (e.g. 10.0.0.0/8, ::1/128); '\(item)' is not one")
                }
                return network
            }
        }
        if let text = try reader.value("WEBHOOK_ALLOW_PRIVATE_NETWORKS") {
            guard text == "true" || text == "false" else {
                throw ConfigurationError(variable: "WEBHOOK_ALLOW_PRIVATE_NETWORKS", reason: "must be true or false")
            }
            configuration.webhookAllowPrivateNetworks = text == "true"
        }
        return configuration
    }
}

public enum LogFormat: String, Sendable {
    case text, json
}
