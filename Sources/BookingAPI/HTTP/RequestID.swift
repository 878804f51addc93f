import Foundation

enum RequestIDPolicy {
    /// A client's `X-Request-ID` is echoed only when it is 1–128 safe characters; otherwise a
    /// fresh one is generated, so logs never carry arbitrary client bytes.
    static func accept(_ candidate: String?) -> String {
        if let candidate, (1...128).contains(candidate.utf8.count),
            candidate.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: ":")
            })
        {
            return candidate
        }
        return UUID().uuidString.lowercased()
    }
}
