import Foundation
import HTTPTypes
import Hummingbird

/// One invalid field of a 422 answer; `field` is a dotted path such as `address.country`.
public struct FieldError: Codable, Sendable, Equatable {
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
}

/// An error that answers the client as an RFC 9457 problem document. Every deliberate 4xx/5xx
/// in the application is one of these; anything else becomes a bare 500.
public struct ProblemError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var detail: String?
    public var errors: [FieldError]?
    public var headers: HTTPFields
    /// Extension members (RFC 9457 §3.2), e.g. `conflicting_id`.
    public var extensions: [String: JSONValue]

    public init(
        _ status: HTTPResponse.Status,
        detail: String? = nil,
        errors: [FieldError]? = nil,
        headers: HTTPFields = [:],
        extensions: [String: JSONValue] = [:]
    ) {
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extensions = extensions
    }

    public static func badRequest(_ detail: String) -> Self { .init(.badRequest, detail: detail) }

    public static func unauthorized(_ detail: String, tokenWasSent: Bool) -> Self {
        let challenge = tokenWasSent ? #"Bearer error="invalid_token""# : "Bearer"
        return .init(.unauthorized, detail: detail, headers: [.wwwAuthenticate: challenge])
    }

    public static func forbidden(_ detail: String = "Your role may not do this") -> Self { .init(.forbidden, detail: detail) }
    public static func notFound(_ detail: String) -> Self { .init(.notFound, detail: detail) }

    public static func conflict(_ detail: String, extensions: [String: JSONValue] = [:]) -> Self {
        .init(.conflict, detail: detail, extensions: extensions)
    }

    public static func invalid(_ errors: [FieldError]) -> Self {
        let detail = errors.count == 1 ? "1 field is invalid" : "\(errors.count) fields are invalid"
        return .init(.unprocessableContent, detail: detail, errors: errors)
    }

    public static func unavailable(_ detail: String, retryAfter seconds: Int, extensions: [String: JSONValue] = [:]) -> Self {
        .init(.serviceUnavailable, detail: detail, headers: [.retryAfter: String(seconds)], extensions: extensions)
    }
}
