import Foundation
import HTTPTypes
import Hummingbird
import Synchronization
import Logging

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
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue),
            "route": .string(context.endpointPath ?? "unmatched"),
            "status": .stringConvertible(response.status.code),
            "duration_ms": .string(String(format: "%.2f", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)),
        ]
        if let userID = context.state.userID.withLock({ $0 }) {
            metadata["user_id"] = .stringConvertible(userID)
        }
        context.logger.info("request", metadata: metadata)
        return response
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
            logger.error("unhandled error", metadata: ["error": .string(String(reflecting: error))])
            return ProblemError(.internalServerError, detail: "The server failed to answer; the request id is in X-Request-ID").response()
        }
    }
}
