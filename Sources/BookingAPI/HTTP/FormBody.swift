import Foundation
import Hummingbird

extension Request {
    /// `username`/`password`-style fields from a form or JSON body, as the content type says.
    /// A body that is neither, or malformed, is 400.
    func stringFields(context: some RequestContext) async throws -> [String: String] {
        guard let type = headers[.contentType].flatMap(MediaType.init(from:)) else {
            throw ProblemError.badRequest("Content-Type must be application/x-www-form-urlencoded or application/json")
        }
        if type.isType(.applicationUrlEncoded) {
            let buffer = try await body.collect(upTo: context.maxUploadSize)
            guard let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes) else {
                throw ProblemError.badRequest("The form body is not UTF-8")
            }
            return try Self.parseForm(text)
        }
        if type.isType(.applicationJson) {
            var fields: [String: String] = [:]
            for (key, value) in try await jsonObject(context: context) {
                guard case .string(let string) = value else {
                    throw ProblemError.invalid([FieldError(field: key, message: "must be a string")])
                }
                fields[key] = string
            }
            return fields
        }
        throw ProblemError.badRequest("Content-Type must be application/x-www-form-urlencoded or application/json")
    }

    static func parseForm(_ text: String) throws(ProblemError) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding,
                let value = String(parts.count > 1 ? parts[1] : "").replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            else {
                throw .badRequest("The form body is malformed")
            }
            guard fields[key] == nil else { throw .badRequest("The form repeats the field '\(key)'") }
            fields[key] = value
        }
        return fields
    }
}
