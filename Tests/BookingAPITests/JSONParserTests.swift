import Foundation
import Testing

@testable import BookingAPI

/// `JSONParser` against an implementation we did not write: Foundation's `JSONDecoder` reading
/// the same bytes into `JSONValue` must agree on what is valid and on the value.
@Suite struct JSONParserTests {
    static func reference(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    static func ours(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONParser.parse(bytes).value
    }

    static let corpus: [String] = [
        #"{}"#, #"[]"#, #"{"a":1}"#, #" {"a" : [1, 2.5, -3e2, 0, -0.0, 1E+2, 4e-1] } "#, #"{"a":{"b":{"c":[true,false,null]}}}"#,
        #""just a string""#, #"12"#, #"true"#, #"null"#, #"{"k":"\u00e9\n\t\"\\\/\b\f\r"}"#, #"{"e":"\ud83d\ude00"}"#,
        #"{"topic":"Zürich 日本 🎉","n":123456789012}"#, #"{"a":"x\u0000y"}"#, #"[[[[[[]]]]]]"#, "{\"a\":1}\n",
        // Invalid texts.
        "", " ", "{", "}", "[", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, "[1,]", "[1 2]", "[,]", "{,}", "[1,,]", "{\"a\":1,,}", #"{a:1}"#, "{'a':1}", "01", "-", "1.", ".5",
        "1e", "+1", "NaN", "Infinity", "tru", "nul", "truex", #"{"a":1}x"#, #"{"a":1}{}"#, #""\x""#, #""\u12""#, #""\ud83d""#,
        #""\ude00""#, "\"a\u{01}b\"", "\"tab\there\"", "1e400", "-1e400", #"{"a":1 "b":2}"#, "[1]]", "{\"a\":[}", "\u{FEFF}{}",
    ]

    @Test func agreesWithJSONDecoderOnACorpus() {
        for text in Self.corpus {
            let bytes = Array(text.utf8)
            #expect(Self.ours(bytes) == Self.reference(bytes), "\(text.debugDescription)")
        }
        // Invalid UTF-8 inside a string, and a deep nesting limit.
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]] {
            #expect(Self.ours(bytes) == nil && Self.reference(bytes) == nil, "\(bytes)")
        }
        #expect(Self.ours(Array((String(repeating: "[", count: 600) + String(repeating: "]", count: 600)).utf8)) == nil)
    }

    /// Random documents, then every one with single bytes changed: both parsers accept the same
    /// texts and read the same values.
    @Test func agreesWithJSONDecoderOnRandomAndMutatedTexts() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array(#"{}[]:,"\ u0123456789abcdefABCDEF.eE+-tnrfl \#n\#t"#.utf8) + [0x01, 0x7F, 0xC3, 0xA9, 0xFF]
        var checked = 0
        for _ in 0..<300 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let text = try JSONEncoder().encode(value)
            let bytes = Array(text)
            #expect(Self.ours(bytes) == value, "\(String(decoding: bytes, as: UTF8.self))")
            for _ in 0..<10 {
                var mutated = bytes
                let position = Int.random(in: 0..<mutated.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: mutated[position] = alphabet.randomElement(using: &generator)!
                case 1: mutated.remove(at: position)
                default: mutated.insert(alphabet.randomElement(using: &generator)!, at: position)
                }
                #expect(Self.ours(mutated) == Self.reference(mutated), "\(String(decoding: mutated, as: UTF8.self).debugDescription)")
                checked += 1
            }
        }
        #expect(checked == 3000)
    }

    @Test func reportsTheFirstRepeatedKeyAfterUnescaping() throws {
        #expect(try JSONParser.parse(Array(#"{"a":1,"b":{"c":1,"\u0063":2},"a":3}"#.utf8)).repeatedKey == "c")
        #expect(try JSONParser.parse(Array(#"{"a":1,"b":2}"#.utf8)).repeatedKey == nil)
        #expect(try JSONParser.parse(Array(#"[{"x":1},{"x":2}]"#.utf8)).repeatedKey == nil)
        // Invalid text is invalid, whatever it repeats.
        #expect(throws: JSONParser.Invalid.self) { try JSONParser.parse(Array(#"{"a":1,"a":2"#.utf8)) }
    }

    static func randomValue(depth: Int, using generator: inout SystemRandomNumberGenerator) -> JSONValue {
        let pick = Int.random(in: 0..<(depth < 3 ? 7 : 5), using: &generator)
        switch pick {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .number(Double(Int.random(in: -100_000...100_000, using: &generator)))
        case 3: return .number(Double.random(in: -1e6...1e6, using: &generator))
        case 4:
            let scalars: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "é", "日", "🎉", "\u{7F}", "\u{2028}"]
            return .string(String((0..<Int.random(in: 0...8, using: &generator)).map { _ in scalars.randomElement(using: &generator)! }))
        case 5:
            return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) })
        default:
            var object: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0...4, using: &generator) {
                object["k\(index)\(["", "é", "\"", "\n"].randomElement(using: &generator)!)"] = randomValue(depth: depth + 1, using: &generator)
            }
            return .object(object)
        }
    }
}

/// What a client sees: a repeated key, invalid JSON and a non-object each get a 400 that says so,
/// and nothing is stored.
@Suite struct RequestBodyTests {
    @Test func badBodiesAreRefusedWithTheirReason() async throws {
        let app = try await TestApp.make()
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let rita = try await client.token("rita")
            let valid = String(decoding: try JSONSerialization.data(withJSONObject: bookingBody(hoursFromNow: 300)), as: UTF8.self)
            let repeated = String(valid.dropLast()) + #","topic":"Other"}"#
            let escaped = String(valid.dropLast()) + #","\u0074opic":"Other"}"#
            for (body, detail) in [
                (repeated, "repeats the key 'topic'"), (escaped, "repeats the key 'topic'"),
                (String(valid.dropLast()), "not valid JSON"), ("[1]", "must be a JSON object"),
            ] {
                let response = try await client.send(.post, "/booking", token: rita, body: body, contentType: "application/json")
                #expect(response.status == .badRequest, "\(body)")
                #expect((response.json["detail"] as? String)?.contains(detail) == true, "\(response.text)")
            }
            #expect(try await app.database.scalar("SELECT count(*)::text FROM bookings") == "0")
            let accepted = try await client.send(.post, "/booking", token: rita, body: valid, contentType: "application/json")
            #expect(accepted.status == .created, "\(accepted.text)")
        }
    }
}
