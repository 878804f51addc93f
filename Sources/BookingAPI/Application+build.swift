import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle
import UnixSignals

/// The long-lived parts the routes share.
struct AppServices {
    let configuration: AppConfiguration
    let logger: Logger
    let pool: DatabasePool
    let database: Database
    let readinessConnection: ReadinessConnection
    let hasher: PasswordHasher
    let tokens: TokenService
    let signedInUsers: SignedInUsers

    init(_ configuration: AppConfiguration, logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        let url = configuration.database
        self.pool = DatabasePool(
            configuration: url.serverPoolConfiguration(maximumConnections: configuration.databasePoolSize, timeout: configuration.databaseTimeout),
            probe: try url.connectionConfiguration(connectTimeout: .seconds(1)),
            logger: logger
        )
        self.database = Database(pool: pool, timeout: configuration.databaseTimeout)
        self.readinessConnection = try ReadinessConnection(url: url, logger: logger)
        self.hasher = PasswordHasher(configuration: configuration.hashing)
        try await hasher.prepare()
        self.tokens = await TokenService(configuration: configuration.tokens)
        self.signedInUsers = SignedInUsers(database: database)
    }
}

/// Builds the whole service from its configuration. `booking-server` runs what this returns;
/// the tests build the same application with a test configuration.
public func buildApplication(
    _ configuration: AppConfiguration,
    logger: Logger? = nil
) async throws -> some ApplicationProtocol {
    let logger = logger ?? makeLogger(label: "booking-api", level: configuration.logLevel)
    // Fail at start-up, not on the first booking, when the resources were not deployed.
    guard Countries.load() != nil, OpenAPIDocument.load() != nil, CommonPasswords.load() != nil, ConsoleController.load() != nil else {
        throw ConfigurationError(
            variable: "booking-api_BookingAPI.resources",
            reason: "is missing beside the executable (it holds countries.tsv, openapi.json, common-passwords.txt and console/)"
        )
    }
    let services = try await AppServices(configuration, logger: logger)
    let limiter = ConnectionLimiter(limit: configuration.maxConnections)
    let readTimeout = configuration.httpReadTimeout
    return Application(
        router: HeadResponderBuilder(inner: buildRouter(services)),
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [EdgeHandler(readTimeout: readTimeout, limiter: limiter, logger: logger)],
                idleTimeout: .init(configuration.httpIdleTimeout)
            )
        ),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: [
            services.pool, services.readinessConnection, services.hasher,
            SessionPruner(sessions: SessionStore(database: services.database, lifetime: .seconds(configuration.refreshTokenLifetimeSeconds)), logger: logger),
            ExpirySweeper(database: services.database, logger: logger),
            UserChangeListener(
                users: services.signedInUsers,
                configuration: try configuration.database.connectionConfiguration(connectTimeout: .seconds(2)),
                logger: logger
            ),
            WebhookDispatcher(
                database: services.database,
                listenConfiguration: try configuration.database.connectionConfiguration(connectTimeout: .seconds(2)),
                allowPrivateNetworks: configuration.webhookAllowPrivateNetworks,
                logger: logger,
                retryBase: configuration.webhookRetryBase,
                pollInterval: configuration.webhookPollInterval
            ),
        ],
        logger: logger
    )
}

/// Every route of the service, each with its access decided (see `RouteRegistrar`).
func buildRouter(_ services: AppServices) -> Router<AppRequestContext> {
    let configuration = services.configuration
    let database = services.database
    let users = PostgresUserStore(database: database)

    let router = Router(context: AppRequestContext.self)
    let table = RouteTable()
    // Middleware is captured when a route is registered, so it comes first.
    router.add(middleware: ProblemMiddleware(routes: table))

    let routes = RouteRegistrar(router: router, authenticator: Authenticator(tokens: services.tokens, users: services.signedInUsers))
    let accounts = AccountService(
        database: database, hasher: services.hasher, sessionLifetime: configuration.refreshTokenLifetimeSeconds, signedInUsers: services.signedInUsers
    )
    OperationsController(
        readiness: Readiness(connection: services.readinessConnection, migrationsDirectory: configuration.migrationsDirectory, logger: services.logger)
    ).register(on: routes.publicRoutes())
    AuthController(
        users: users,
        hasher: services.hasher,
        tokens: services.tokens,
        throttle: LoginThrottle(database: database, baseBlockSeconds: configuration.loginThrottleBaseSeconds),
        trustedProxies: configuration.trustedProxies,
        sessions: SessionStore(database: database, lifetime: .seconds(configuration.refreshTokenLifetimeSeconds)),
        accounts: accounts,
        secureCookies: configuration.environment == .prod
    ).register(
        publicRoutes: routes.publicRoutes(),
        userRoutes: routes.routes(for: AnyAuthenticatedUser.self)
    )
    let bookings = PostgresBookingStore(database: database)
    BookingController(store: bookings).register(
        userRoutes: routes.routes("booking", for: AnyAuthenticatedUser.self),
        adminRoutes: routes.routes("booking", for: AdminOnly.self)
    )
    CalendarController(feeds: CalendarFeedStore(database: database), bookings: bookings).register(
        publicRoutes: routes.publicRoutes(),
        userRoutes: routes.routes(for: AnyAuthenticatedUser.self),
        adminRoutes: routes.routes(for: AdminOnly.self)
    )
    UserController(accounts: accounts, audit: AuditStore(database: database)).register(
        adminRoutes: routes.routes(for: AdminOnly.self)
    )
    WebhookController(store: WebhookStore(database: database), allowPrivateNetworks: configuration.webhookAllowPrivateNetworks).register(
        adminRoutes: routes.routes(for: AdminOnly.self)
    )
    // Checked at start-up (buildApplication), so present here.
    ConsoleController.load()?.register(publicRoutes: routes.publicRoutes())
    table.record(router.routes)
    return router
}

public func makeLogger(label: String, level: Logger.Level) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}

/// Builds and runs the service until SIGTERM or SIGINT, which drain in-flight requests first:
/// after `shutdownGrace` the group cancels what is left, and a watchdog ends the process a
/// second later whatever is stuck.
public func runServer(_ configuration: AppConfiguration) async throws {
    let app = try await buildApplication(configuration)
    let logger = makeLogger(label: "booking-api", level: configuration.logLevel)
    var group = ServiceGroupConfiguration(
        services: [
            .init(service: app),
            .init(service: ShutdownWatchdog(grace: configuration.shutdownGrace, logger: logger), successTerminationBehavior: .ignore),
        ],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger
    )
    group.maximumGracefulShutdownDuration = configuration.shutdownGrace
    // No maximumCancellationDuration: past it ServiceLifecycle calls fatalError; the watchdog
    // ends the process instead.
    group.maximumCancellationDuration = nil
    try await ServiceGroup(configuration: group).run()
}

/// Waits for graceful shutdown, then gives the process `grace` plus one second to end on its
/// own before exiting it. The countdown runs on a thread of its own, so a starved task pool
/// cannot stop it.
struct ShutdownWatchdog: Service {
    let grace: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let limit = grace + .seconds(1)
        let logger = self.logger
        let thread = Thread {
            Thread.sleep(forTimeInterval: Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18)
            logger.error("shutdown did not finish within SHUTDOWN_GRACE_SECONDS; exiting")
            exit(1)
        }
        thread.start()
    }
}
