import Foundation

/// Finds an object key that a JSON text repeats. JSON parsers disagree on such input (first
/// wins, last wins, error), so a proxy and this service could read different requests; we
/// refuse it instead. Keys are compared after unescaping (`"a"` and `"\u0061"` are the same).
/// Run on text a JSON parser already accepted; anything unexpected ends the scan quietly.
struct DuplicateKeyScanner {
    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    static func firstDuplicate(in data: some Collection<UInt8>) -> String? {
        var scanner = DuplicateKeyScanner(bytes: Array(data))
        return try? scanner.value()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private struct Stop: Error {}

    private mutating func skipSpace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    /// Returns the first repeated key found in the value at `index`, or nil.
    private mutating func value() throws -> String? {
        skipSpace()
        guard index < bytes.count else { throw Stop() }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""):
            _ = try string()
            return nil
        default:
            // A number or a literal: up to the next delimiter.
            while index < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                index += 1
            }
            return nil
        }
    }

    private mutating func object() throws -> String? {
        depth += 1
        guard depth < 512 else { throw Stop() }
        defer { depth -= 1 }
        index += 1
        var keys = Set<String>()
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return nil
        }
        while true {
            skipSpace()
            let key = try string()
            if !keys.insert(key).inserted { return key }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Stop() }
            index += 1
            if let found = try value() { return found }
            skipSpace()
            guard index < bytes.count else { throw Stop() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            index += 1  // "}"
            return nil
        }
    }

    private mutating func array() throws -> String? {
        depth += 1
        guard depth < 512 else { throw Stop() }
        defer { depth -= 1 }
        index += 1
        skipSpace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return nil
        }
        while true {
            if let found = try value() { return found }
            skipSpace()
            guard index < bytes.count else { throw Stop() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            index += 1  // "]"
            return nil
        }
    }

    /// A string token, unescaped.
    private mutating func string() throws -> String {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Stop() }
        index += 1
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll(keepingCapacity: true)
        }
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") {
                flush()
                return String(scalars)
            }
            guard byte == UInt8(ascii: "\\") else {
                raw.append(byte)
                continue
            }
            guard index < bytes.count else { throw Stop() }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "b"): raw.append(0x08)
            case UInt8(ascii: "f"): raw.append(0x0C)
            case UInt8(ascii: "n"): raw.append(0x0A)
            case UInt8(ascii: "r"): raw.append(0x0D)
            case UInt8(ascii: "t"): raw.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    index += 2
                    let low = try hex4()
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                flush()
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: raw.append(escape)  // \" \\ \/
            }
        }
        throw Stop()
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else {
            throw Stop()
        }
        index += 4
        return code
    }
}
