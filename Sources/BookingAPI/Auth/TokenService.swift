import Crypto
import Foundation
import JWTKit
import Synchronization

/// Issues and verifies EdDSA (Ed25519) access tokens and publishes the public keys.
public struct TokenService: Sendable {
    public struct Issued: Sendable {
        public let token: String
        public let expiresIn: Int
    }

    /// What a verified token says; the caller still checks the user's current row.
    struct Verified: Sendable {
        let userID: Int64
        let tokenVersion: Int
    }

    /// Tokens whose header, signature, issuer and audience already checked out. None of those
    /// can change for a given token string while the process runs, so a repeat skips the
    /// Ed25519 verification (measured at ~13 % of a request's CPU); `nbf`/`exp` are still checked
    /// every time, and the user row (revocation) is always read by the caller.
    private let verified = VerifiedTokenCache(capacity: 10_000)

    let configuration: TokenConfiguration
    private let keys: JWTKeyCollection
    let signingKid: String
    private let publicKeys: [(kid: String, key: Curve25519.Signing.PublicKey)]

    public init(configuration: TokenConfiguration) async {
        self.configuration = configuration
        let keys = JWTKeyCollection()
        let signingPublic = configuration.signingKey.publicKey
        self.signingKid = Self.thumbprint(signingPublic)
        var publicKeys = [(kid: signingKid, key: signingPublic)]
        for key in configuration.extraVerificationKeys {
            let kid = Self.thumbprint(key)
            if !publicKeys.contains(where: { $0.kid == kid }) { publicKeys.append((kid, key)) }
        }
        self.publicKeys = publicKeys
        for (kid, key) in publicKeys where kid != signingKid {
            await keys.add(eddsa: EdDSA.PublicKey(backing: key), kid: JWKIdentifier(string: kid))
        }
        await keys.add(eddsa: EdDSA.PrivateKey(backing: configuration.signingKey), kid: JWKIdentifier(string: signingKid))
        self.keys = keys
    }

    func issue(userID: Int64, username: String, role: Role, tokenVersion: Int, now: Date = Date()) async throws -> Issued {
        let issuedAt = Int(now.timeIntervalSince1970)
        let claims = AccessClaims(
            iss: configuration.issuer,
            aud: configuration.audience,
            sub: String(userID),
            username: username,
            role: role.rawValue,
            ver: tokenVersion,
            iat: issuedAt,
            nbf: issuedAt,
            exp: issuedAt + configuration.lifetimeSeconds,
            jti: UUID().uuidString.lowercased()
        )
        let token = try await keys.sign(claims, kid: JWKIdentifier(string: signingKid), header: ["typ": "JWT"])
        return Issued(token: token, expiresIn: configuration.lifetimeSeconds)
    }

    /// Checks header, signature and every claim. Throws a 401 problem on any failure.
    func verify(_ token: String, now: Date = Date()) async throws(ProblemError) -> Verified {
        let nowSeconds = Int(now.timeIntervalSince1970)
        let leeway = configuration.leewaySeconds
        if let cached = verified.get(token) {
            guard cached.exp + leeway > nowSeconds, cached.nbf - leeway <= nowSeconds else { throw Self.refused() }
            return cached.result
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerData = Data(base64URL: parts[0]),
            let header = try? JSONDecoder().decode(TokenHeader.self, from: headerData)
        else { throw Self.refused() }
        // Only EdDSA, only with a key we know: jwt-kit would fall back to its default key for
        // an unknown kid, and `none`/HMAC must never reach a verifier.
        guard header.alg == "EdDSA", let kid = header.kid, publicKeys.contains(where: { $0.kid == kid }) else {
            throw Self.refused()
        }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(token, as: AccessClaims.self)
        } catch {
            throw Self.refused()
        }
        guard claims.iss == configuration.issuer, claims.aud == configuration.audience, let userID = Int64(claims.sub) else {
            throw Self.refused()
        }
        let result = Verified(userID: userID, tokenVersion: claims.ver)
        verified.put(token, .init(result: result, nbf: claims.nbf, exp: claims.exp))
        guard claims.exp + leeway > nowSeconds, claims.nbf - leeway <= nowSeconds else { throw Self.refused() }
        return result
    }

    /// Built only when a token is refused: it is a problem with headers, not free on every request.
    private static func refused() -> ProblemError {
        .unauthorized("The access token is invalid or expired", tokenWasSent: true)
    }

    /// RFC 7517 key set of every verification key.
    var jwks: JWKSDocument {
        JWKSDocument(keys: publicKeys.map { JWKSDocument.Key(kid: $0.kid, x: $0.key.rawRepresentation.base64URLEncoded()) })
    }

    /// RFC 7638 thumbprint of an OKP key: base64url(SHA-256 of the canonical JSON members).
    static func thumbprint(_ key: Curve25519.Signing.PublicKey) -> String {
        let x = key.rawRepresentation.base64URLEncoded()
        let canonical = #"{"crv":"Ed25519","kty":"OKP","x":"\#(x)"}"#
        return Data(SHA256.hash(data: Data(canonical.utf8))).base64URLEncoded()
    }

    private struct TokenHeader: Decodable {
        let alg: String
        let kid: String?
    }
}

/// A bounded map of verified tokens; when full it starts over, which costs only re-verification.
final class VerifiedTokenCache: Sendable {
    struct Entry: Sendable {
        let result: TokenService.Verified
        let nbf: Int
        let exp: Int
    }

    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])

    init(capacity: Int) {
        self.capacity = capacity
    }

    func get(_ token: String) -> Entry? {
        entries.withLock { $0[token] }
    }

    func put(_ token: String, _ entry: Entry) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = entry
        }
    }
}

struct JWKSDocument: Codable, Sendable {
    struct Key: Codable, Sendable {
        var kty = "OKP"
        var crv = "Ed25519"
        var use = "sig"
        var alg = "EdDSA"
        let kid: String
        let x: String
    }

    let keys: [Key]
}

extension Data {
    init?(base64URL text: some StringProtocol) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64.append("=") }
        self.init(base64Encoded: base64)
    }

    /// Unpadded base64url. Mapped byte by byte: three Foundation `replacingOccurrences` passes
    /// cost ~2 % of a list request, which writes one cursor.
    func base64URLEncoded() -> String {
        var bytes = Array(base64EncodedString().utf8)
        while bytes.last == UInt8(ascii: "=") { bytes.removeLast() }
        for index in bytes.indices {
            if bytes[index] == UInt8(ascii: "+") {
                bytes[index] = UInt8(ascii: "-")
            } else if bytes[index] == UInt8(ascii: "/") {
                bytes[index] = UInt8(ascii: "_")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
