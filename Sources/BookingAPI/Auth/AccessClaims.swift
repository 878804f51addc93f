import Foundation
import JWTKit

/// The claims of an access token. jwt-kit checks none of them by itself; `TokenService`
/// checks every one after the signature.
struct AccessClaims: JWTPayload, Equatable {
    var iss: String
    var aud: String
    var sub: String
    var username: String
    var role: String
    var ver: Int
    var iat: Int
    var nbf: Int
    var exp: Int
    var jti: String

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
