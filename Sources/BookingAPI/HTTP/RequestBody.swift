import Foundation
import Hummingbird

extension Request {
    /// The body as a JSON object. Wrong content type or malformed JSON is 400, over 64 KiB 413.
    func jsonObject(context: some RequestContext) async throws -> [String: JSONValue] {
        guard let type = headers[.contentType], MediaType(from: type)?.isType(.applicationJson) == true else {
            throw ProblemError.badRequest("Content-Type must be application/json")
        }
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))
        } catch {
            throw ProblemError.badRequest("The body is not valid JSON")
        }
        if let repeated = DuplicateKeyScanner.firstDuplicate(in: buffer.readableBytesView) {
            throw ProblemError.badRequest("The body repeats the key '\(repeated)'")
        }
        guard case .object(let object) = value else {
            throw ProblemError.badRequest("The body must be a JSON object")
        }
        return object
    }
}
