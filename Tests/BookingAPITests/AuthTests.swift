import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import JWTKit
import Testing

@testable import BookingAPI

/// Builds a JWS by hand so tests can produce every kind of bad token.
enum TokenForge {
    static func b64(_ data: Data) -> String { data.base64URLEncoded() }

    static func json(_ object: [String: Any]) -> Data {
        try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    static func claims(userID: Int64, username: String, role: String = "requester", version: Int = 1, now: Date = Date(), overrides: [String: Any] = [:]) -> [String: Any] {
        let time = Int(now.timeIntervalSince1970)
        var claims: [String: Any] = [
            "iss": "booking-api", "aud": "booking-api", "sub": String(userID), "username": username, "role": role,
            "ver": version, "iat": time, "nbf": time, "exp": time + 900, "jti": UUID().uuidString,
        ]
        for (key, value) in overrides { claims[key] = value }
        return claims
    }

    static func eddsa(_ claims: [String: Any], key: Curve25519.Signing.PrivateKey, kid: String? = nil) throws -> String {
        let header = ["alg": "EdDSA", "typ": "JWT", "kid": kid ?? TokenService.thumbprint(key.publicKey)]
        let input = b64(json(header)) + "." + b64(json(claims))
        return input + "." + b64(try key.signature(for: Data(input.utf8)))
    }

    static func hs256(_ claims: [String: Any], secret: Data, kid: String) -> String {
        let input = b64(json(["alg": "HS256", "typ": "JWT", "kid": kid])) + "." + b64(json(claims))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: secret))
        return input + "." + b64(Data(mac))
    }

    static func none(_ claims: [String: Any], kid: String) -> String {
        b64(json(["alg": "none", "typ": "JWT", "kid": kid])) + "." + b64(json(claims)) + "."
    }
}

@Suite struct TokenTests {
    @Test func issuesTokensForFormAndJSONThatTheJWKSVerifies() async throws {
        let app = try await TestApp.make()
        let user = try await app.createUser("alice", role: .requester)
        try await app.test { client in
            let form = try await client.send(.post, "/token", body: "grant_type=password&username=alice&password=correct+horse+battery", contentType: "application/x-www-form-urlencoded")
            #expect(form.status == .ok)
            #expect(form.headers[.cacheControl] == "no-store")
            #expect(form.json["token_type"] as? String == "bearer")
            #expect(form.json["expires_in"] as? Int == 900)
            let json = try await client.send(.post, "/token", json: ["username": "alice", "password": "correct horse battery"])
            #expect(json.status == .ok)
            let token = try #require(json.json["access_token"] as? String)

            // Verify with nothing but the published key set.
            let jwks = try await client.send(.get, "/.well-known/jwks.json")
            let keys = JWTKeyCollection()
            try await keys.add(jwksJSON: jwks.text)
            struct Claims: JWTPayload {
                let iss: String, aud: String, sub: String, username: String, role: String, ver: Int, iat: Int, nbf: Int, exp: Int, jti: String
                func verify(using algorithm: some JWTAlgorithm) async throws {}
            }
            let claims = try await keys.verify(token, as: Claims.self)
            #expect(claims.sub == String(user.id))
            #expect(claims.username == "alice")
            #expect(claims.role == "requester")
            #expect(claims.ver == user.tokenVersion)
            #expect(claims.exp - claims.iat == 900)
            #expect(claims.iss == "booking-api" && claims.aud == "booking-api")

            let header = try JSONSerialization.jsonObject(with: Data(base64URL: token.split(separator: ".")[0])!) as! [String: Any]
            #expect(header["alg"] as? String == "EdDSA")
            let jwk = try #require((jwks.json["keys"] as? [[String: Any]])?.first)
            #expect(header["kid"] as? String == jwk["kid"] as? String)
            #expect(jwk["kty"] as? String == "OKP" && jwk["crv"] as? String == "Ed25519")

            let me = try await client.send(.get, "/me", token: token)
            #expect(me.status == .ok)
            #expect(me.json["username"] as? String == "alice")
            #expect(me.json["role"] as? String == "requester")
            #expect(me.json["id"] as? Int == Int(user.id))
        }
    }

    /// RFC 4648's test vectors in the URL alphabet without padding, and round trips.
    @Test func base64URLMatchesRFC4648() {
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Data(plain.utf8).base64URLEncoded() == encoded)
            #expect(Data(base64URL: encoded) == Data(plain.utf8))
        }
        #expect(Data([0xFB, 0xFF, 0xBF]).base64URLEncoded() == "-_-_")
        #expect(Data([0xFB, 0xFF]).base64URLEncoded() == "-_8")
        for length in 0..<40 {
            let data = Data((0..<length).map { _ in UInt8.random(in: 0...255) })
            #expect(Data(base64URL: data.base64URLEncoded()) == data)
        }
    }

    @Test func unknownUserAndWrongPasswordLookTheSame() async throws {
        let app = try await TestApp.make()
        try await app.createUser("bob", role: .requester)
        try await app.test { client in
            let wrong = try await client.send(.post, "/token", json: ["username": "bob", "password": "not the password"])
            let unknown = try await client.send(.post, "/token", json: ["username": "nobody", "password": "not the password"])
            #expect(wrong.status == .unauthorized)
            #expect(unknown.status == .unauthorized)
            #expect(wrong.data == unknown.data)
            #expect(wrong.json["detail"] as? String == "Incorrect username or password")
            #expect(wrong.headers[.wwwAuthenticate] == "Bearer")
            #expect(unknown.headers[.wwwAuthenticate] == "Bearer")
        }
    }

    @Test func badBodiesAreClientErrors() async throws {
        let app = try await TestApp.make()
        try await app.test { client in
            let notJSON = try await client.send(.post, "/token", body: "{not json", contentType: "application/json")
            #expect(notJSON.status == .badRequest)
            let plain = try await client.send(.post, "/token", body: "username=a", contentType: "text/plain")
            #expect(plain.status == .badRequest)
            let missing = try await client.send(.post, "/token", json: ["username": "a"])
            #expect(missing.status == .unprocessableContent)
            #expect((missing.json["errors"] as? [[String: Any]])?.first?["field"] as? String == "password")
            #expect(try await client.send(.post, "/token", body: "grant_type=client_credentials&username=a&password=b", contentType: "application/x-www-form-urlencoded").status == .badRequest)
            // Any text may arrive as a username: an absurd one is a plain 401, never a 500.
            let long = try await client.send(.post, "/token", json: ["username": String(repeating: "u", count: 5000), "password": "whatever at all"])
            #expect(long.status == .unauthorized)
        }
    }

    @Test func disabledAccountIsForbiddenOnlyWithTheRightPassword() async throws {
        let app = try await TestApp.make()
        try await app.createUser("carol", role: .requester)
        try await app.database.execute("UPDATE users SET disabled = true WHERE username = 'carol'")
        try await app.test { client in
            let right = try await client.send(.post, "/token", json: ["username": "carol", "password": "correct horse battery"])
            #expect(right.status == .forbidden)
            let wrong = try await client.send(.post, "/token", json: ["username": "carol", "password": "wrong password!"])
            #expect(wrong.status == .unauthorized)
        }
    }

    @Test func repeatedFailuresAreThrottledUntilTheBlockEndsAndSuccessResets() async throws {
        let app = try await TestApp.make { $0.loginThrottleBaseSeconds = 2 }
        try await app.createUser("dave", role: .requester)
        try await app.test { client in
            for _ in 0..<5 {
                #expect(try await client.send(.post, "/token", json: ["username": "dave", "password": "wrong password!"]).status == .unauthorized)
            }
            let throttled = try await client.send(.post, "/token", json: ["username": "dave", "password": "correct horse battery"])
            #expect(throttled.status == .tooManyRequests)
            let retryAfter = try #require(throttled.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...2).contains(retryAfter))
            // Unknown usernames are throttled alike, so a 429 reveals nothing.
            for _ in 0..<5 { _ = try await client.send(.post, "/token", json: ["username": "ghost", "password": "wrong password!"]) }
            #expect(try await client.send(.post, "/token", json: ["username": "ghost", "password": "x"]).status == .tooManyRequests)

            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await client.send(.post, "/token", json: ["username": "dave", "password": "correct horse battery"]).status == .ok)
            // The success reset the counter: one failure is a plain 401 again.
            #expect(try await client.send(.post, "/token", json: ["username": "dave", "password": "wrong password!"]).status == .unauthorized)
            #expect(try await client.send(.post, "/token", json: ["username": "dave", "password": "correct horse battery"]).status == .ok)
        }
        let failures = try await app.database.scalar("SELECT count(*)::int FROM login_throttle WHERE username = 'dave'", as: Int.self)
        #expect(failures == 0)
    }

    @Test func backOffDoublesAndIsCapped() async throws {
        let app = try await TestApp.make { $0.loginThrottleBaseSeconds = 30 }
        try await app.test { client in
            for _ in 0..<5 { _ = try await client.send(.post, "/token", json: ["username": "eve", "password": "wrong password!"]) }
        }
        let first = try await app.database.scalar("SELECT extract(epoch FROM blocked_until - now())::int FROM login_throttle WHERE username = 'eve'", as: Int.self)
        #expect((29...30).contains(first ?? 0))
        // The next failure after the block doubles it.
        try await app.database.execute("UPDATE login_throttle SET blocked_until = now() - interval '1 second' WHERE username = 'eve'")
        try await app.test { client in
            _ = try await client.send(.post, "/token", json: ["username": "eve", "password": "wrong password!"])
        }
        let second = try await app.database.scalar("SELECT extract(epoch FROM blocked_until - now())::int FROM login_throttle WHERE username = 'eve'", as: Int.self)
        #expect((59...60).contains(second ?? 0))
        // Simulate many more failures after the block: the block never exceeds 15 minutes.
        try await app.database.execute("UPDATE login_throttle SET consecutive_failures = 40, blocked_until = now() - interval '1 second' WHERE username = 'eve'")
        try await app.test { client in
            _ = try await client.send(.post, "/token", json: ["username": "eve", "password": "wrong password!"])
        }
        let capped = try await app.database.scalar("SELECT extract(epoch FROM blocked_until - now())::int FROM login_throttle WHERE username = 'eve'", as: Int.self)
        #expect((899...900).contains(capped ?? 0))
    }

    @Test func quietUsernamesArePrunedButBlocksAreKept() async throws {
        let app = try await TestApp.make()
        try await app.database.execute("""
            INSERT INTO login_throttle (username, consecutive_failures, blocked_until, updated_at) VALUES
              ('stale', 3, NULL, now() - interval '2 days'),
              ('still-blocked', 9, now() + interval '10 minutes', now() - interval '2 days'),
              ('recent', 2, NULL, now() - interval '1 hour')
            """)
        try await app.test { client in
            _ = try await client.send(.post, "/token", json: ["username": "someone", "password": "wrong password!"])
        }
        let left = try await app.database.scalar("SELECT string_agg(username, ',' ORDER BY username) FROM login_throttle", as: String.self)
        #expect(left == "recent,someone,still-blocked")
    }

    @Test func weakerHashesAreUpgradedAtTheNextLogin() async throws {
        let app = try await TestApp.make()
        let weak = try Argon2.hash("correct horse battery", parameters: .init(memoryKiB: 8192, iterations: 1, parallelism: 1))
        let user = try await app.createUser("frank", role: .requester)
        try await app.database.execute("UPDATE users SET password_hash = \(weak) WHERE username = 'frank'")
        try await app.test { client in
            _ = try await client.token("frank")
        }
        let stored = try #require(try await app.database.scalar("SELECT password_hash FROM users WHERE username = 'frank'", as: String.self))
        #expect(stored.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$"))
        #expect(stored != weak)
        // Same password, so tokens issued before stay valid.
        #expect(try await app.database.scalar("SELECT token_version FROM users WHERE username = 'frank'", as: Int.self) == user.tokenVersion)
    }

    @Test func fullHashingQueueAnswers503WhileHealthzStaysUp() async throws {
        let app = try await TestApp.make { $0.hashing = PasswordHashingConfiguration(memoryKiB: 65536, iterations: 4, threads: 1, queueLimit: 0) }
        try await app.createUser("gina", role: .requester)
        try await app.test { client in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await client.send(.post, "/token", json: ["username": "gina", "password": "wrong password!"]).status }
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(20))
                    return try await client.send(.get, "/healthz").status
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.contains(.serviceUnavailable))
            #expect(statuses.contains(.ok))
            #expect(statuses.filter { $0 == .unauthorized }.count >= 1)
        }
    }
}

@Suite struct TokenRefusalTests {
    /// Every way a token can be wrong gets 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
    @Test func refusesEveryKindOfBadToken() async throws {
        let app = try await TestApp.make()
        let user = try await app.createUser("henry", role: .admin)
        let key = app.configuration.tokens.signingKey
        let kid = TokenService.thumbprint(key.publicKey)
        let claims = TokenForge.claims(userID: user.id, username: "henry", role: "admin", version: user.tokenVersion)
        let stranger = Curve25519.Signing.PrivateKey()
        let good = try TokenForge.eddsa(claims, key: key)
        var parts = good.split(separator: ".").map(String.init)
        var payload = TokenForge.claims(userID: user.id, username: "henry", role: "admin", version: user.tokenVersion)
        payload["sub"] = "999999"
        parts[1] = TokenForge.b64(TokenForge.json(payload))
        let tampered = parts.joined(separator: ".")
        let now = Date()

        let bad: [String: String] = [
            "malformed": "not.a.jwt",
            "garbage": "abc",
            "alg none": TokenForge.none(claims, kid: kid),
            "HS256 with the public key": TokenForge.hs256(claims, secret: key.publicKey.rawRepresentation, kid: kid),
            "unknown kid": try TokenForge.eddsa(claims, key: stranger),
            "known kid, wrong key": try TokenForge.eddsa(claims, key: stranger, kid: kid),
            "tampered payload": tampered,
            "expired": try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion, now: now.addingTimeInterval(-1000)), key: key),
            "nbf in the future": try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion, overrides: ["nbf": Int(now.timeIntervalSince1970) + 120]), key: key),
            "wrong iss": try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion, overrides: ["iss": "someone-else"]), key: key),
            "wrong aud": try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion, overrides: ["aud": "other-api"]), key: key),
            "stale ver": try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion + 7), key: key),
            "unknown user": try TokenForge.eddsa(TokenForge.claims(userID: 424242, username: "x"), key: key),
        ]
        try await app.test { client in
            #expect(try await client.send(.get, "/me", token: good).status == .ok, "the control token must work")
            // Expiry within the 30 s leeway still passes.
            let justExpired = try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "henry", version: user.tokenVersion, now: now.addingTimeInterval(-915)), key: key)
            #expect(try await client.send(.get, "/me", token: justExpired).status == .ok)
            for (name, token) in bad {
                let response = try await client.send(.get, "/me", token: token)
                #expect(response.status == .unauthorized, "\(name)")
                #expect(response.headers[.wwwAuthenticate] == #"Bearer error="invalid_token""#, "\(name)")
                #expect(response.headers[.contentType] == "application/problem+json", "\(name)")
            }
            let basic = try await client.send(.get, "/me", headers: [.authorization: "Basic YTpi"])
            #expect(basic.status == .unauthorized)
            // The scheme is case-insensitive and spaces or tabs around the token are ignored.
            for header in ["bearer \(good)", "BEARER  \(good)\t ", "Bearer \t\(good)"] {
                #expect(try await client.send(.get, "/me", headers: [.authorization: header]).status == .ok, "\(header.prefix(10))")
            }
            for header in ["Bearer", "Bearer ", "Bearerx \(good)", "Bearer\t\(good)", "Bearer \(good) x", "Bear \(good)"] {
                #expect(try await client.send(.get, "/me", headers: [.authorization: header]).status == .unauthorized, "\(header.prefix(10))")
            }
            let none = try await client.send(.get, "/me")
            #expect(none.status == .unauthorized)
            #expect(none.headers[.wwwAuthenticate] == "Bearer")
        }
    }

    @Test func cachedVerificationStillEnforcesTimeAndNeverCachesFailures() async throws {
        let key = Curve25519.Signing.PrivateKey()
        let service = await TokenService(configuration: TokenConfiguration(signingKey: key))
        let now = Date()
        let token = try TokenForge.eddsa(TokenForge.claims(userID: 7, username: "x", now: now), key: key)
        #expect(try await service.verify(token, now: now).userID == 7)
        // Second use comes from the cache; past exp + leeway it is refused all the same.
        #expect(try await service.verify(token, now: now.addingTimeInterval(60)).userID == 7)
        await #expect(throws: ProblemError.self) { try await service.verify(token, now: now.addingTimeInterval(900 + 31)) }
        await #expect(throws: ProblemError.self) { try await service.verify(token, now: now.addingTimeInterval(-31)) }
        // A refused token stays refused on every try.
        let forged = try TokenForge.eddsa(TokenForge.claims(userID: 7, username: "x", now: now), key: Curve25519.Signing.PrivateKey(), kid: TokenService.thumbprint(key.publicKey))
        for _ in 0..<2 {
            await #expect(throws: ProblemError.self) { try await service.verify(forged, now: now) }
        }
    }

    @Test func extraVerificationKeysAcceptOlderTokens() async throws {
        let old = Curve25519.Signing.PrivateKey()
        let app = try await TestApp.make { $0.tokens.extraVerificationKeys = [old.publicKey] }
        let user = try await app.createUser("ivy", role: .requester)
        try await app.test { client in
            let token = try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "ivy", version: user.tokenVersion), key: old)
            #expect(try await client.send(.get, "/me", token: token).status == .ok)
            let jwks = try await client.send(.get, "/.well-known/jwks.json")
            #expect((jwks.json["keys"] as? [Any])?.count == 2)
        }
    }

    @Test func rolesComeFromTheCurrentRowNotTheToken() async throws {
        let app = try await TestApp.make()
        let user = try await app.createUser("jack", role: .requester)
        try await app.test { client in
            // A requester's token that claims admin still only gets requester rights.
            let forged = try TokenForge.eddsa(TokenForge.claims(userID: user.id, username: "jack", role: "admin", version: user.tokenVersion), key: app.configuration.tokens.signingKey)
            #expect(try await client.send(.get, "/me", token: forged).json["role"] as? String == "requester")
            #expect(try await client.send(.delete, "/booking/1", token: forged).status == .forbidden)
        }
    }
}

/// Tokens stop working the moment an operator changes the account, through the real CLI.
@Suite struct RevocationTests {
    @Test func passwordRoleAndDisabledChangesRevokeTokens() async throws {
        let app = try await TestApp.make()
        try await app.createUser("kate", role: .requester)
        let env = ["DATABASE_URL": app.database.connectionString]
        try await app.test { client in
            var token = try await client.token("kate")
            #expect(try await client.send(.get, "/me", token: token).status == .ok)

            let set = try await runProgram("manage-passwords", ["set", "kate", "--password-stdin"], environment: env, input: "a brand new password\n")
            #expect(set.status == 0, "\(set.output)")
            #expect(try await client.send(.get, "/me", token: token).status == .unauthorized)
            token = try await client.token("kate", "a brand new password")

            #expect(try await runProgram("manage-passwords", ["set", "kate", "--role", "admin", "--password-stdin"], environment: env, input: "a brand new password").status == 0)
            #expect(try await client.send(.get, "/me", token: token).status == .unauthorized)
            token = try await client.token("kate", "a brand new password")
            #expect(try await client.send(.get, "/me", token: token).json["role"] as? String == "admin")

            // Another admin first: the last enabled admin cannot be disabled.
            try await app.createUser("anna", role: .admin)
            #expect(try await runProgram("manage-passwords", ["disable", "kate"], environment: env).status == 0)
            #expect(try await client.send(.get, "/me", token: token).status == .unauthorized)
            #expect(try await client.send(.post, "/token", json: ["username": "kate", "password": "a brand new password"]).status == .forbidden)

            #expect(try await runProgram("manage-passwords", ["enable", "kate"], environment: env).status == 0)
            // Enabling does not revive old tokens.
            #expect(try await client.send(.get, "/me", token: token).status == .unauthorized)
            #expect(try await client.send(.get, "/me", token: try await client.token("kate", "a brand new password")).status == .ok)
        }
    }
}

@Suite struct FirstLoginTests {
    /// The dummy hash that unknown usernames are checked against is made before serving, so the
    /// first such login costs what every other does (no first-use setup on that path).
    @Test func theDummyHashExistsBeforeTheFirstRequest() async throws {
        let app = try await TestApp.make()
        let services = try await AppServices(app.configuration, logger: TestEnvironment.logger)
        #expect(services.hasher.hasDummyHash)
        try await services.hasher.shutdown()
        let fresh = PasswordHasher(configuration: app.configuration.hashing)
        #expect(!fresh.hasDummyHash)
        try await fresh.shutdown()
    }
}
