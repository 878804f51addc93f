import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import Logging
import Metrics
import NIOHTTP1
import PostgresNIO

extension HTTPField.Name {
    static let requestID = Self("X-Request-ID")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let xForwardedFor = Self("X-Forwarded-For")!
}

/// The outermost middleware: assigns the request id, turns every error into problem+json,
/// and logs one line per request. Unknown errors become a bare 500 whose details go only to
/// the log, under the request id.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    /// Every route's path and methods, for 405.
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = RequestIDPolicy.accept(request.headers[.requestID])
        context.requestID = requestID
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPParserError {
            // The client sent a body the parser refused, or went away mid-body. Either way the
            // connection is done; Hummingbird answers (if anyone is listening) and closes it.
            // Not the server's error: counted apart, never logged as one.
            EdgeMetrics.abandoned.increment()
            context.logger.debug("request body not received", metadata: ["reason": .string("\(error)")])
            throw error
        } catch let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound" {
            // The router matched no route for this method; another method may be served here.
            if let allowed = routes.allowedMethods(for: request.uri.path) {
                response = ProblemError(
                    .methodNotAllowed,
                    detail: "\(request.method.rawValue) is not served here; use \(allowed.joined(separator: ", "))",
                    headers: [.allow: allowed.joined(separator: ", ")]
                ).response()
            } else {
                response = Self.response(for: error, logger: context.logger)
            }
        } catch {
            response = Self.response(for: error, logger: context.logger)
        }
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - started
        // The route template, never the raw path: ids would explode the label set.
        let route = context.endpointPath ?? "unmatched"
        let metrics = RequestMetrics.shared.for(method: request.method.rawValue, route: route, status: response.status.code)
        metrics.count.increment()
        metrics.duration.record(duration: elapsed)
        guard context.logger.logLevel <= .info else { return response }
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue),
            "route": .string(route),
            "status": .stringConvertible(response.status.code),
            "duration_ms": .string(String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
        ]
        if let userID = context.state.userID.withLock({ $0 }) {
            metadata["user_id"] = .stringConvertible(userID)
        }
        context.logger.info("request", metadata: metadata)
        return response
    }

    /// What of an unknown error may be logged. PostgreSQL errors are reduced to their code,
    /// SQLSTATE, message and call site: their full reflection carries the query and its bound
    /// values, and a value may be a password hash.
    static func loggable(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            let state = error.serverInfo?[.sqlState] ?? "-"
            let message = error.serverInfo?[.message] ?? "-"
            return "PSQLError(code: \(error.code), sqlState: \(state), message: \(message), at: \(error.file ?? "?"):\(error.line ?? 0))"
        }
        return String(reflecting: error)
    }

    static func response(for error: any Error, logger: Logger) -> Response {
        switch error {
        case let problem as ProblemError:
            return problem.response()
        case let error as HTTPError:
            // Hummingbird's own errors (unknown route, body too large, …): keep the status.
            let detail: String? =
                switch error.status {
                case .notFound: "No such resource"
                case .contentTooLarge: "The request body is larger than \(RequestLimits.maxBodyBytes / 1024) KiB"
                default: error.body
                }
            return ProblemError(error.status, detail: detail, headers: error.headers).response()
        case let error as any HTTPResponseError where error.status.code < 500:
            return ProblemError(error.status).response()
        case let error as DatabaseError:
            switch error {
            case .unavailable(let kind, let reason):
                logger.warning("database unavailable", metadata: ["kind": .string(kind.rawValue), "reason": .string(reason)])
                return ProblemError.unavailable("The database is not available right now; retry shortly", retryAfter: 1).response()
            case .schemaNotMigrated(let reason):
                logger.error("database schema not migrated", metadata: ["reason": .string(reason)])
                return ProblemError.unavailable("The database schema is not current; retry after the deployment finishes", retryAfter: 5).response()
            case .constraint, .unexpected:
                logger.error("unhandled error", metadata: ["error": .string(error.description)])
                return ProblemError(.internalServerError, detail: "The server failed to answer; the request id is in X-Request-ID").response()
            }
        case is CancellationError:
            // The server is shutting down under this request.
            return ProblemError.unavailable("The server is shutting down; retry shortly", retryAfter: 1).response()
        default:
            // A driver error that did not come through `Database` is still told by its cause.
            if let translated = DatabaseError.translating(error) { return response(for: translated, logger: logger) }
            logger.error("unhandled error", metadata: ["error": .string(Self.loggable(error))])
            return ProblemError(.internalServerError, detail: "The server failed to answer; the request id is in X-Request-ID").response()
        }
    }
}

/// Request metric handles by (method, route, status), made once each rather than per request.
final class RequestMetrics: Sendable {
    struct Handles: Sendable {
        let count: Counter
        let duration: Metrics.Timer
    }

    static let shared = RequestMetrics()
    private let handles = Mutex<[String: Handles]>([:])

    func `for`(method: String, route: String, status: Int) -> Handles {
        let key = "\(method) \(status) \(route)"
        return handles.withLock { handles in
            if let existing = handles[key] { return existing }
            let dimensions = [("method", method), ("route", route), ("status", String(status))]
            let made = Handles(
                count: Counter(label: MetricNames.requests, dimensions: dimensions),
                duration: Metrics.Timer(label: MetricNames.requestDuration, dimensions: dimensions)
            )
            handles[key] = made
            return made
        }
    }
}
