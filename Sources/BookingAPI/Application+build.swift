import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// The long-lived parts the routes share.
struct AppServices {
    let configuration: AppConfiguration
    let logger: Logger
    let postgres: PostgresClient
    let hasher: PasswordHasher
    let tokens: TokenService

    init(_ configuration: AppConfiguration, logger: Logger) async {
        self.configuration = configuration
        self.logger = logger
        self.postgres = PostgresClient(
            configuration: configuration.database.clientConfiguration(fixedPoolSize: configuration.databasePoolSize),
            backgroundLogger: logger
        )
        self.hasher = PasswordHasher(configuration: configuration.hashing)
        self.tokens = await TokenService(configuration: configuration.tokens)
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
    guard Countries.load() != nil, OpenAPIDocument.load() != nil else {
        throw ConfigurationError(
            variable: "booking-api_BookingAPI.resources",
            reason: "is missing beside the executable (it holds countries.tsv and openapi.json)"
        )
    }
    let services = await AppServices(configuration, logger: logger)
    return Application(
        router: buildRouter(services),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: [services.postgres, services.hasher],
        logger: logger
    )
}

/// Every route of the service, each with its access decided (see `RouteRegistrar`).
func buildRouter(_ services: AppServices) -> Router<AppRequestContext> {
    let configuration = services.configuration
    let postgres = services.postgres
    let users = PostgresUserStore(client: postgres)

    let router = Router(context: AppRequestContext.self)
    // Middleware is captured when a route is registered, so it comes first.
    router.add(middleware: ProblemMiddleware())

    let routes = RouteRegistrar(router: router, authenticator: Authenticator(tokens: services.tokens, users: users))
    OperationsController(
        readiness: Readiness(client: postgres, migrationsDirectory: configuration.migrationsDirectory, logger: services.logger)
    ).register(on: routes.publicRoutes())
    AuthController(
        users: users,
        hasher: services.hasher,
        tokens: services.tokens,
        throttle: LoginThrottle(client: postgres, baseBlockSeconds: configuration.loginThrottleBaseSeconds)
    ).register(
        publicRoutes: routes.publicRoutes(),
        userRoutes: routes.routes(for: AnyAuthenticatedUser.self)
    )
    BookingController(store: PostgresBookingStore(client: postgres)).register(
        userRoutes: routes.routes("booking", for: AnyAuthenticatedUser.self),
        adminRoutes: routes.routes("booking", for: AdminOnly.self)
    )
    return router
}

public func makeLogger(label: String, level: Logger.Level) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = level
    return logger
}

/// Builds and runs the service until SIGTERM or SIGINT, which drain in-flight requests first.
public func runServer(_ configuration: AppConfiguration) async throws {
    let app = try await buildApplication(configuration)
    try await app.runService()
}
