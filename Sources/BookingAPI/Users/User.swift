import Foundation

public enum Role: String, Sendable, Codable, CaseIterable {
    case admin, requester
}

/// A row of `users`. The hash never leaves the store's callers; it is not Encodable.
public struct UserRecord: Sendable {
    public let id: Int64
    public let username: String
    public let passwordHash: String
    public let role: Role
    public let disabled: Bool
    public let tokenVersion: Int
    public let passwordChangedAt: Date
}

/// What operators may see of a user: never the hash.
public struct UserSummary: Sendable, Equatable {
    public let username: String
    public let role: Role
    public let disabled: Bool
    public let passwordChangedAt: Date
}

public enum UsernamePolicy {
    /// Mirrors the CHECK on `users.username`.
    public static func check(_ username: String) -> String? {
        let bytes = Array(username.utf8)
        guard (1...64).contains(bytes.count) else { return "a username must be 1–64 characters" }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
        }
        guard isAlphanumeric(bytes[0]),
            bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "@") || $0 == UInt8(ascii: "-") })
        else {
            return "a username starts with a letter or digit and holds only letters, digits and . _ @ -"
        }
        return nil
    }
}
