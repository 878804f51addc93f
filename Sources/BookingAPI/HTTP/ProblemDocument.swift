import Foundation
import HTTPTypes
import Hummingbird

/// The RFC 9457 body, with extension members flattened beside the standard ones.
struct ProblemDocument: Encodable {
    var type = "about:blank"
    var title: String
    var status: Int
    var detail: String?
    var errors: [FieldError]?
    var extensions: [String: JSONValue]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(type, forKey: Key("type"))
        try container.encode(title, forKey: Key("title"))
        try container.encode(status, forKey: Key("status"))
        try container.encodeIfPresent(detail, forKey: Key("detail"))
        try container.encodeIfPresent(errors, forKey: Key("errors"))
        for (key, value) in extensions.sorted(by: { $0.key < $1.key }) where !["type", "title", "status", "detail", "errors"].contains(key) {
            try container.encode(value, forKey: Key(key))
        }
    }

    func response(status: HTTPResponse.Status, headers: HTTPFields) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data(#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.utf8)
        var fields = headers
        fields[.contentType] = "application/problem+json"
        fields[.contentLength] = String(data.count)
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension ProblemError {
    func response() -> Response {
        ProblemDocument(
            title: status.reasonPhrase,
            status: status.code,
            detail: detail,
            errors: status == .unprocessableContent ? (errors ?? []) : nil,
            extensions: extensions
        ).response(status: status, headers: headers)
    }
}
