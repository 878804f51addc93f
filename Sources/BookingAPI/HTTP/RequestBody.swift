import Foundation
import Hummingbird

extension Request {
    /// The body as a JSON object. Wrong content type or malformed JSON is 400, over 64 KiB 413.
    /// With `mergePatch`, `application/merge-patch+json` (RFC 7396) is accepted too.
    func jsonObject(context: some RequestContext, mergePatch: Bool = false) async throws -> [String: JSONValue] {
        let type = headers[.contentType].flatMap(MediaType.init(from:))
        let isJSON = type?.isType(.applicationJson) == true
        let isMergePatch = mergePatch && type?.type == .application && type?.subType == "merge-patch+json"
        guard isJSON || isMergePatch else {
            throw ProblemError.badRequest(mergePatch ? "Content-Type must be application/merge-patch+json or application/json" : "Content-Type must be application/json")
        }
        return try Self.object(from: try await body.collect(upTo: context.maxUploadSize))
    }

    /// As `jsonObject`, for routes whose body may be left out: an empty body is an empty object.
    func optionalJSONObject(context: some RequestContext) async throws -> [String: JSONValue] {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return [:] }
        guard headers[.contentType].flatMap(MediaType.init(from:))?.isType(.applicationJson) == true else {
            throw ProblemError.badRequest("Content-Type must be application/json")
        }
        return try Self.object(from: buffer)
    }

    private static func object(from buffer: ByteBuffer) throws -> [String: JSONValue] {
        let parsed: (value: JSONValue, repeatedKey: String?)
        do {
            parsed = try JSONParser.parse(buffer.readableBytesView)
        } catch {
            throw ProblemError.badRequest("The body is not valid JSON")
        }
        if let repeated = parsed.repeatedKey {
            throw ProblemError.badRequest("The body repeats the key '\(repeated)'")
        }
        let value = parsed.value
        guard case .object(let object) = value else {
            throw ProblemError.badRequest("The body must be a JSON object")
        }
        return object
    }
}
