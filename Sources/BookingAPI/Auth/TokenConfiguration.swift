import Crypto
import CryptoExtras
import Foundation

/// Signing and verification keys and the claims every token must carry.
public struct TokenConfiguration: Sendable {
    /// The newest key: it signs, and its public half verifies.
    public var signingKey: Curve25519.Signing.PrivateKey
    /// Older or extra public keys that still verify (key rotation).
    public var extraVerificationKeys: [Curve25519.Signing.PublicKey]
    public var issuer: String
    public var audience: String
    public var lifetimeSeconds: Int
    /// Leeway for `exp` and `nbf`.
    public var leewaySeconds: Int = 30
    /// True when the key was generated in memory or comes from the development key directory.
    public var isDevelopmentKey: Bool

    public init(
        signingKey: Curve25519.Signing.PrivateKey,
        extraVerificationKeys: [Curve25519.Signing.PublicKey] = [],
        issuer: String = "booking-api",
        audience: String = "booking-api",
        lifetimeSeconds: Int = 900,
        isDevelopmentKey: Bool = false
    ) {
        self.signingKey = signingKey
        self.extraVerificationKeys = extraVerificationKeys
        self.issuer = issuer
        self.audience = audience
        self.lifetimeSeconds = lifetimeSeconds
        self.isDevelopmentKey = isDevelopmentKey
    }

    /// Directory name that marks keys made by `scripts/generate-keys --dev`; `prod` refuses them.
    public static let developmentKeyDirectory = "dev-keys"

    static func load(from reader: EnvironmentReader, environment: AppEnvironment) throws(ConfigurationError) -> Self {
        let key: Curve25519.Signing.PrivateKey
        var isDevelopmentKey = false
        if let pem = try reader.value("JWT_PRIVATE_KEY") {
            do {
                key = try Curve25519.Signing.PrivateKey(pemRepresentation: pem)
            } catch {
                throw ConfigurationError(variable: "JWT_PRIVATE_KEY", reason: "is not an Ed25519 private key in PEM form")
            }
            if let path = reader.values["JWT_PRIVATE_KEY_FILE"], path.split(separator: "/").contains(Substring(developmentKeyDirectory)) {
                isDevelopmentKey = true
            }
        } else if environment == .prod {
            throw ConfigurationError(variable: "JWT_PRIVATE_KEY", reason: "is not set (prod never generates a signing key)")
        } else {
            // dev/test without a key: an in-memory key, so tokens die with the process.
            key = Curve25519.Signing.PrivateKey()
            isDevelopmentKey = true
        }
        if environment == .prod, isDevelopmentKey {
            throw ConfigurationError(variable: "JWT_PRIVATE_KEY_FILE", reason: "names a development key; prod refuses keys under \(developmentKeyDirectory)/")
        }
        var extra: [Curve25519.Signing.PublicKey] = []
        if let list = try reader.value("JWT_PUBLIC_KEYS") {
            for path in try Self.publicKeyPaths(list) {
                guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8) else {
                    throw ConfigurationError(variable: "JWT_PUBLIC_KEYS", reason: "names a file that cannot be read: \(path)")
                }
                do {
                    extra.append(try Curve25519.Signing.PublicKey(pemRepresentation: pem))
                } catch {
                    throw ConfigurationError(variable: "JWT_PUBLIC_KEYS", reason: "names a file that is not an Ed25519 public key PEM: \(path)")
                }
            }
        }
        let issuer = try reader.value("JWT_ISSUER") ?? "booking-api"
        let audience = try reader.value("JWT_AUDIENCE") ?? "booking-api"
        return Self(
            signingKey: key,
            extraVerificationKeys: extra,
            issuer: issuer,
            audience: audience,
            lifetimeSeconds: try reader.integer("ACCESS_TOKEN_TTL_SECONDS", default: 900, range: 60...86_400),
            isDevelopmentKey: isDevelopmentKey
        )
    }

    /// A directory (every `*.pem` in it) or paths separated by `:`.
    static func publicKeyPaths(_ list: String) throws(ConfigurationError) -> [String] {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: list, isDirectory: &isDirectory), isDirectory.boolValue {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: list) else {
                throw ConfigurationError(variable: "JWT_PUBLIC_KEYS", reason: "names a directory that cannot be read: \(list)")
            }
            return names.filter { $0.hasSuffix(".pem") }.sorted().map { "\(list)/\($0)" }
        }
        return list.split(separator: ":").map(String.init)
    }
}
