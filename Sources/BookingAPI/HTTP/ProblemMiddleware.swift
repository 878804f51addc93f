import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import Logging
import Metrics
import PostgresNIO

extension HTTPField.Name {
    static let requestID = Self("X-Request-ID")!
    static let idempotencyKey = Self("Idempotency-Key")!
}

/// The outermost middleware: assigns the request id, turns every error into problem+json,
/// and logs one line per request. Unknown errors become a bare 500 whose details go only to
/// the log, under the request id.
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = RequestIDPolicy.accept(request.headers[.requestID])
        context.requestID = requestID
        context.logger[metadataKey: "request_id"] = .string(requestID)
        let started = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
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
        default:
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
