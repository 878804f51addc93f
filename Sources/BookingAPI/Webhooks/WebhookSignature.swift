import Crypto
import Foundation

/// Standard Webhooks signing (https://www.standardwebhooks.com): the secret is `whsec_` and the
/// base64 of 32 random bytes; a signature is `v1,` and the base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, keyed with the secret's decoded bytes.
enum WebhookSignature {
    static let secretPrefix = "whsec_"

    /// A new key: its bytes (stored) and the text shown to the admin once.
    static func newSecret() -> (key: [UInt8], text: String) {
        let key = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        return (key, text(key))
    }

    static func text(_ key: [UInt8]) -> String {
        secretPrefix + Data(key).base64EncodedString()
    }

    static func sign(id: String, timestamp: Int64, body: [UInt8], key: [UInt8]) -> String {
        var message: [UInt8] = []
        message.reserveCapacity(id.utf8.count + 24 + body.count)
        message.append(contentsOf: id.utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: String(timestamp).utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The `webhook-signature` header: one signature per key, space-separated (the newest
    /// first), so receivers holding either the new or the old secret accept it during rotation.
    static func header(id: String, timestamp: Int64, body: [UInt8], keys: [[UInt8]]) -> String {
        keys.map { sign(id: id, timestamp: timestamp, body: body, key: $0) }.joined(separator: " ")
    }
}
