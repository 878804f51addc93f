import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ServiceLifecycle

/// Builds the whole service from its configuration. `booking-server` runs what this returns;
/// the tests build the same application with a test configuration.
public func buildApplication(
    _ configuration: AppConfiguration,
    logger: Logger? = nil
) async throws -> some ApplicationProtocol {
    let logger = logger ?? makeLogger(label: "booking-api", level: configuration.logLevel)
    let postgres = PostgresClient(configuration: configuration.database.clientConfiguration, backgroundLogger: logger)
    let hasher = PasswordHasher(configuration: configuration.hashing)
    let tokens = await TokenService(configuration: configuration.tokens)
    let users = PostgresUserStore(client: postgres)
    let throttle = LoginThrottle(client: postgres, baseBlockSeconds: configuration.loginThrottleBaseSeconds)
    let readiness = Readiness(client: postgres, migrationsDirectory: configuration.migrationsDirectory, logger: logger)

    let router = Router(context: AppRequestContext.self)
    // Middleware is captured when a route is registered, so it comes first.
    router.add(middleware: ProblemMiddleware())

    let routes = RouteRegistrar(router: router, authenticator: Authenticator(tokens: tokens, users: users))
    OperationsController(readiness: readiness).register(on: routes.publicRoutes())
    AuthController(users: users, hasher: hasher, tokens: tokens, throttle: throttle).register(
        publicRoutes: routes.publicRoutes(),
        userRoutes: routes.routes(for: AnyAuthenticatedUser.self)
    )
    BookingController(store: PostgresBookingStore(client: postgres)).register(
        userRoutes: routes.routes("booking", for: AnyAuthenticatedUser.self),
        adminRoutes: routes.routes("booking", for: AdminOnly.self)
    )

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
        services: [postgres, hasher],
        logger: logger
    )
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
