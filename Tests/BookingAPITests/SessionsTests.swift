import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import BookingAPI

private func isBase64URL(_ text: String) -> Bool {
    text.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
}

/// A refresh refusal: 401, a problem document with `"error": "invalid_grant"`.
private func expectInvalidGrant(_ response: TestResponseBody, _ comment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(response.status == .unauthorized, "\(comment): \(response.status) \(response.text)", sourceLocation: sourceLocation)
    guard response.status == .unauthorized else { return }
    #expect(try response.acctProblem().error == "invalid_grant", "\(comment)", sourceLocation: sourceLocation)
}

// MARK: - Refresh tokens

@Suite(.timeLimit(.minutes(2))) struct SessionsRefreshTests {
    @Test func passwordLoginAnswersWithARefreshToken() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            for response in [
                try await client.send(.post, "/token", body: "username=alice&password=correct+horse+battery", contentType: "application/x-www-form-urlencoded"),
                try await client.send(.post, "/token", json: ["username": "alice", "password": "correct horse battery"]),
            ] {
                #expect(response.status == .ok)
                #expect(response.headers[.cacheControl] == "no-store")
                let tokens = try response.acctDecode(AcctTokens.self)
                #expect(tokens.token_type == "bearer")
                #expect(tokens.expires_in == 900)
                #expect(tokens.refresh_expires_in == 1_209_600)
                #expect(tokens.refresh_token.count >= 43, "at least 256 bits")
                #expect(isBase64URL(tokens.refresh_token), "\(tokens.refresh_token)")
                #expect(tokens.refresh_token != tokens.access_token)
            }
            let one = try await client.acctLogin("alice")
            let two = try await client.acctLogin("alice")
            #expect(one.refresh_token != two.refresh_token)
        }
    }

    @Test func refreshRotatesAndReplayingASpentTokenRevokesItsSession() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            let login = try await client.acctLogin("alice")
            let other = try await client.acctLogin("alice")

            // Unused OAuth parameters are ignored.
            let first = try await client.acctRefresh(login.refresh_token, extra: "&client_id=console&scope=bookings")
            #expect(first.status == .ok, "\(first.text)")
            #expect(first.headers[.cacheControl] == "no-store")
            let rotated = try first.acctDecode(AcctTokens.self)
            #expect(rotated.refresh_token != login.refresh_token)
            #expect(rotated.refresh_expires_in == 1_209_600)
            #expect(rotated.expires_in == 900 && rotated.token_type == "bearer")
            let me = try await client.send(.get, "/me", token: rotated.access_token)
            #expect(me.status == .ok)
            #expect(me.json["username"] as? String == "alice")

            // JSON works as well as a form.
            let second = try await client.send(.post, "/token", json: ["grant_type": "refresh_token", "refresh_token": rotated.refresh_token])
            #expect(second.status == .ok, "\(second.text)")
            let newest = try second.acctDecode(AcctTokens.self)
            #expect(Set([login.refresh_token, rotated.refresh_token, newest.refresh_token]).count == 3)

            // The first token, spent, comes back: refused, and the whole session ends.
            try expectInvalidGrant(try await client.acctRefresh(login.refresh_token), "replayed spent token")
            try expectInvalidGrant(try await client.acctRefresh(newest.refresh_token), "newest token of the revoked session")
            try expectInvalidGrant(try await client.acctRefresh(rotated.refresh_token), "middle token of the revoked session")

            // Another session of the same user is untouched.
            let untouched = try await client.acctRefresh(other.refresh_token)
            #expect(untouched.status == .ok, "\(untouched.text)")
        }
    }

    @Test func twoExchangesOfOneTokenAtOnceSucceedOnce() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            let login = try await client.acctLogin("alice")
            async let a = client.acctRefresh(login.refresh_token)
            async let b = client.acctRefresh(login.refresh_token)
            let answers = [try await a, try await b]
            #expect(answers.map(\.status.code).sorted() == [200, 401], "\(answers.map(\.text))")
            // The loser presented a spent token: the session is gone, the winner's new token too.
            if let winner = answers.first(where: { $0.status == .ok }) {
                try expectInvalidGrant(try await client.acctRefresh(try winner.acctDecode(AcctTokens.self).refresh_token), "winner after a replay")
            }
        }
    }

    @Test func tokensNeverIssuedAreRefused() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            _ = try await client.acctLogin("alice")
            let forged = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64URLEncoded()
            try expectInvalidGrant(try await client.acctRefresh(forged), "never issued")
            try expectInvalidGrant(try await client.acctRefresh("not-a-token"), "garbage")
            try expectInvalidGrant(try await client.send(.post, "/token", json: ["grant_type": "refresh_token", "refresh_token": forged]), "never issued, JSON")
            // An access token is not a refresh token.
            let access = try await client.acctLogin("alice").access_token
            try expectInvalidGrant(try await client.acctRefresh(access), "an access token")
        }
    }

    @Test func disabledUsersAndChangedTokenVersionsCannotRefresh() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            // Disabled without anything else (no version bump, no session ended): still refused.
            let before = try await client.acctLogin("alice")
            try await app.database.execute("UPDATE users SET disabled = true WHERE username = 'alice'")
            try expectInvalidGrant(try await client.acctRefresh(before.refresh_token), "disabled user")
            try await app.database.execute("UPDATE users SET disabled = false WHERE username = 'alice'")

            // The token version moved on (sessions not ended explicitly): refused.
            let later = try await client.acctLogin("alice")
            try await app.database.execute("UPDATE users SET token_version = token_version + 1 WHERE username = 'alice'")
            try expectInvalidGrant(try await client.acctRefresh(later.refresh_token), "token version changed")
            let fresh = try await client.acctLogin("alice")
            #expect(try await client.acctRefresh(fresh.refresh_token).status == .ok)
        }
    }

    @Test func expiredRefreshTokensAreRefused() async throws {
        let app = try await TestApp.make { $0.refreshTokenLifetimeSeconds = 1 }
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            let login = try await client.acctLogin("alice")
            #expect(login.refresh_expires_in == 1)
            try await Task.sleep(for: .milliseconds(2200))
            try expectInvalidGrant(try await client.acctRefresh(login.refresh_token), "expired")
        }
    }

    @Test func onlyHashesOfRefreshTokensAreStored() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        let tokens: [String] = try await app.test { client in
            let login = try await client.acctLogin("alice")
            let rotated = try await client.acctRefresh(login.refresh_token).acctDecode(AcctTokens.self)
            return [login.refresh_token, rotated.refresh_token]
        }
        let stored = try await app.database.acctInt("SELECT count(*)::int FROM refresh_tokens")
        #expect(stored == 2)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM refresh_tokens WHERE octet_length(token_hash) <> 32") == 0)
        for token in tokens {
            #expect(isBase64URL(token))
            // No column of any row holds the token as text.
            for table in ["refresh_tokens", "sessions", "audit_events", "users"] {
                #expect(try await app.database.acctInt("SELECT count(*)::int FROM \(table) t WHERE position('\(token)' in row_to_json(t)::text) > 0") == 0, "\(table)")
            }
            // Nor its bytes, raw or decoded.
            #expect(try await app.database.acctInt("SELECT count(*)::int FROM refresh_tokens WHERE token_hash = convert_to('\(token)', 'UTF8')") == 0)
            if token.count == 43 {
                let padded = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "="
                #expect(try await app.database.acctInt("SELECT count(*)::int FROM refresh_tokens WHERE token_hash = decode('\(padded)', 'base64')") == 0)
            }
        }
    }

    /// A refresh is database work only: with the one hashing thread kept busy by logins (and
    /// no queue, so another hash would be refused with 503), refreshes still succeed.
    @Test func refreshNeedsNoPasswordHash() async throws {
        let app = try await TestApp.make { $0.hashing = PasswordHashingConfiguration(memoryKiB: 65536, iterations: 4, threads: 1, queueLimit: 0) }
        try await app.createUser("alice", role: .requester)
        try await app.createUser("busy", role: .requester)
        try await app.test { client in
            var refresh = try await client.acctLogin("alice").refresh_token
            let deadline = ContinuousClock.now + .seconds(3)
            // Two workers logging in back to back: the hasher is nearly always taken.
            async let pressure: [HTTPResponse.Status] = withThrowingTaskGroup(of: [HTTPResponse.Status].self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        var statuses: [HTTPResponse.Status] = []
                        while ContinuousClock.now < deadline {
                            statuses.append(try await client.send(.post, "/token", json: ["username": "busy", "password": "correct horse battery"]).status)
                            try await Task.sleep(for: .milliseconds(2))
                        }
                        return statuses
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            try await Task.sleep(for: .milliseconds(300))
            var refreshes: [HTTPResponse.Status] = []
            while ContinuousClock.now < deadline - .milliseconds(300), refreshes.count < 40 {
                let answer = try await client.acctRefresh(refresh)
                refreshes.append(answer.status)
                guard answer.status == .ok else { break }
                refresh = try answer.acctDecode(AcctTokens.self).refresh_token
                try await Task.sleep(for: .milliseconds(20))
            }
            let logins = try await pressure
            #expect(logins.contains(.serviceUnavailable), "the hasher was never saturated: \(logins)")
            #expect(refreshes.count >= 3)
            #expect(refreshes.allSatisfy { $0 == .ok }, "\(refreshes)")
        }
    }
}

// MARK: - Ending sessions

@Suite(.timeLimit(.minutes(2))) struct SessionsEndingTests {
    @Test func revokeEndsTheSessionAndAlwaysAnswersAnEmptyObject() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.test { client in
            let viaForm = try await client.acctLogin("alice")
            let viaJSON = try await client.acctLogin("alice")
            let kept = try await client.acctLogin("alice")
            // The session's current token, after a rotation, revokes the session.
            let rotated = try await client.acctRefresh(viaForm.refresh_token).acctDecode(AcctTokens.self)

            func expectEmpty(_ response: TestResponseBody, _ comment: String) {
                #expect(response.status == .ok, "\(comment): \(response.status) \(response.text)")
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(comment)")
                #expect((try? JSONSerialization.jsonObject(with: response.data) as? [String: Any])?.isEmpty == true, "\(comment): \(response.text)")
            }
            let form = try await client.send(.post, "/token/revoke", body: "token=\(rotated.refresh_token)&token_type_hint=refresh_token", contentType: "application/x-www-form-urlencoded")
            expectEmpty(form, "form")
            try expectInvalidGrant(try await client.acctRefresh(rotated.refresh_token), "revoked by form")

            let json = try await client.send(.post, "/token/revoke", json: ["token": viaJSON.refresh_token, "token_type_hint": "access_token"])
            expectEmpty(json, "JSON, with a misleading hint")
            try expectInvalidGrant(try await client.acctRefresh(viaJSON.refresh_token), "revoked by JSON")

            expectEmpty(try await client.send(.post, "/token/revoke", json: ["token": viaJSON.refresh_token]), "twice")
            let unknown = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64URLEncoded()
            expectEmpty(try await client.send(.post, "/token/revoke", body: "token=\(unknown)", contentType: "application/x-www-form-urlencoded"), "unknown")
            expectEmpty(try await client.send(.post, "/token/revoke", body: "token=whatever&client_id=console", contentType: "application/x-www-form-urlencoded"), "garbage")

            // Only that session: another one of the same user lives on.
            #expect(try await client.acctRefresh(kept.refresh_token).status == .ok)
        }
    }

    @Test func logoutEndsEverySessionAndAccessTokenOfTheCaller() async throws {
        let app = try await TestApp.make()
        try await app.createUser("alice", role: .requester)
        try await app.createUser("bob", role: .requester)
        try await app.test { client in
            let first = try await client.acctLogin("alice")
            let second = try await client.acctLogin("alice")
            let bob = try await client.acctLogin("bob")

            let response = try await client.send(.post, "/logout", token: first.access_token)
            #expect(response.status == .noContent)
            #expect(response.data.isEmpty)
            for session in [first, second] {
                #expect(try await client.send(.get, "/me", token: session.access_token).status == .unauthorized)
                try expectInvalidGrant(try await client.acctRefresh(session.refresh_token), "after logout")
            }
            // Someone else's session is not the caller's.
            #expect(try await client.send(.get, "/me", token: bob.access_token).status == .ok)
            #expect(try await client.acctRefresh(bob.refresh_token).status == .ok)
            // Logging in again works, and an anonymous logout is refused.
            _ = try await client.acctLogin("alice")
            #expect(try await client.send(.post, "/logout").status == .unauthorized)
        }
    }
}

// MARK: - Changing one's own password

@Suite(.timeLimit(.minutes(2))) struct SessionsOwnPasswordTests {
    @Test func changingThePasswordGivesAFreshSessionAndEndsTheOthers() async throws {
        let app = try await TestApp.make()
        try await app.createUser("mona", role: .requester)
        try await app.test { client in
            let current = try await client.acctLogin("mona")
            let other = try await client.acctLogin("mona")
            let response = try await client.send(.post, "/me/password", token: current.access_token, json: ["current_password": "correct horse battery", "new_password": "a fresh passphrase 2"])
            #expect(response.status == .ok, "\(response.text)")
            #expect(response.headers[.cacheControl] == "no-store")
            let fresh = try response.acctDecode(AcctTokens.self)
            #expect(fresh.token_type == "bearer" && fresh.expires_in == 900 && fresh.refresh_expires_in == 1_209_600)

            #expect(try await client.send(.get, "/me", token: fresh.access_token).status == .ok)
            for session in [current, other] {
                #expect(try await client.send(.get, "/me", token: session.access_token).status == .unauthorized)
                try expectInvalidGrant(try await client.acctRefresh(session.refresh_token), "an older session")
            }
            let refreshed = try await client.acctRefresh(fresh.refresh_token)
            #expect(refreshed.status == .ok, "the new session works: \(refreshed.text)")

            #expect(try await client.send(.post, "/token", json: ["username": "mona", "password": "correct horse battery"]).status == .unauthorized)
            _ = try await client.acctLogin("mona", "a fresh passphrase 2")
        }
    }

    @Test func newPasswordsFollowTheRules() async throws {
        let app = try await TestApp.make()
        try await app.createUser("Quentin.Longname", role: .requester)
        try await app.test { client in
            let session = try await client.acctLogin("Quentin.Longname")
            for (new, why) in [("short", "too short"), ("quentin.longname", "the username, ignoring case"), ("qwerasdfzxcv", "common"), ("1QAZXSW23EDC", "common, upper case"), (String(repeating: "y", count: 1025), "too long")] {
                let response = try await client.send(.post, "/me/password", token: session.access_token, json: ["current_password": "correct horse battery", "new_password": new])
                #expect(response.status == .unprocessableContent, "\(why): \(response.status)")
                if response.status == .unprocessableContent { #expect(try response.acctProblem().fields == ["new_password"], "\(why)") }
            }
            let unknown = try await client.send(.post, "/me/password", token: session.access_token, json: ["current_password": "correct horse battery", "new_password": "a fine passphrase 3", "colour": "red"])
            #expect(unknown.status == .unprocessableContent)
            // Nothing changed: the session and the old password still work.
            #expect(try await client.send(.get, "/me", token: session.access_token).status == .ok)
            #expect(try await client.acctRefresh(session.refresh_token).status == .ok)
            _ = try await client.acctLogin("Quentin.Longname")
        }
    }

    @Test func aWrongCurrentPasswordIsA401ThatCountsTowardTheThrottle() async throws {
        let app = try await TestApp.make { $0.loginThrottleBaseSeconds = 120 }
        try await app.createUser("mona", role: .requester)
        try await app.test { client in
            let session = try await client.acctLogin("mona")
            for attempt in 1...5 {
                let response = try await client.send(.post, "/me/password", token: session.access_token, json: ["current_password": "not my password", "new_password": "a fresh passphrase 2"])
                #expect(response.status == .unauthorized, "attempt \(attempt): \(response.status)")
            }
            // The token itself is fine; the password is what was refused.
            #expect(try await client.send(.get, "/me", token: session.access_token).status == .ok)
            let throttled = try await client.send(.post, "/token", json: ["username": "mona", "password": "correct horse battery"])
            #expect(throttled.status == .tooManyRequests)
            #expect(throttled.headers[.retryAfter].flatMap { Int($0) } != nil)
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'mona' AND token_version = 1") == 1, "the password did not change")
    }
}

/// The browser's session: the refresh token in an HttpOnly cookie, never in the body.
@Suite struct BrowserSessionTests {
    static func cookieValue(_ header: String?) -> String? {
        guard let header, let pair = header.split(separator: ";").first else { return nil }
        let parts = pair.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, parts[0] == AuthController.refreshCookie[...] else { return nil }
        return String(parts[1])
    }

    @Test func aCookieSessionKeepsTheRefreshTokenOutOfScriptsReach() async throws {
        let app = try await TestApp.make()
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let login = try await client.send(
                .post, "/token", body: "username=rita&password=correct+horse+battery&session=cookie", contentType: "application/x-www-form-urlencoded"
            )
            #expect(login.status == .ok)
            #expect(login.json["access_token"] is String)
            #expect(login.json["refresh_token"] == nil, "the token is in the cookie only")
            let setCookie = try #require(login.headers[.setCookie])
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/token", "Max-Age=1209600"] {
                #expect(setCookie.contains(attribute), "\(setCookie)")
            }
            #expect(!setCookie.contains("Secure"), "no Secure outside prod (plain http on loopback)")
            let marker = login.headers[values: .setCookie].first { $0.hasPrefix("booking_session=1;") }
            #expect(marker != nil && marker?.contains("HttpOnly") == false, "a readable marker with nothing secret in it")
            let first = try #require(Self.cookieValue(setCookie))

            // A reload: the cookie alone gets a new access token and a new cookie.
            let refreshed = try await client.send(
                .post, "/token", body: "grant_type=refresh_token", contentType: "application/x-www-form-urlencoded",
                headers: [.cookie: "other=1; \(AuthController.refreshCookie)=\(first)"]
            )
            #expect(refreshed.status == .ok, "\(refreshed.text)")
            #expect(refreshed.json["refresh_token"] == nil)
            let second = try #require(Self.cookieValue(refreshed.headers[.setCookie]))
            #expect(second != first)
            let me = try await client.send(.get, "/me", token: refreshed.json["access_token"] as? String)
            #expect(me.json["username"] as? String == "rita")

            // The spent cookie again: refused, and its whole session ends (reuse detection).
            let reused = try await client.send(
                .post, "/token", body: "grant_type=refresh_token", contentType: "application/x-www-form-urlencoded",
                headers: [.cookie: "\(AuthController.refreshCookie)=\(first)"]
            )
            #expect(reused.status == .unauthorized)
            #expect(reused.json["error"] as? String == "invalid_grant")
            let afterReuse = try await client.send(
                .post, "/token", body: "grant_type=refresh_token", contentType: "application/x-www-form-urlencoded",
                headers: [.cookie: "\(AuthController.refreshCookie)=\(second)"]
            )
            #expect(afterReuse.status == .unauthorized)
        }
    }

    @Test func revokingWithTheCookieEndsTheSessionAndClearsIt() async throws {
        let app = try await TestApp.make()
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let login = try await client.send(.post, "/token", json: ["username": "rita", "password": "correct horse battery", "session": "cookie"])
            let token = try #require(Self.cookieValue(login.headers[.setCookie]))
            let revoked = try await client.send(
                .post, "/token/revoke", body: "", contentType: "application/x-www-form-urlencoded",
                headers: [.cookie: "\(AuthController.refreshCookie)=\(token)"]
            )
            #expect(revoked.status == .ok, "\(revoked.text)")
            #expect(revoked.headers[.setCookie]?.contains("Max-Age=0") == true)
            let refresh = try await client.send(
                .post, "/token", body: "grant_type=refresh_token", contentType: "application/x-www-form-urlencoded",
                headers: [.cookie: "\(AuthController.refreshCookie)=\(token)"]
            )
            #expect(refresh.status == .unauthorized)
            // Without a cookie or a field there is nothing to refresh or revoke.
            #expect(try await client.send(.post, "/token", body: "grant_type=refresh_token", contentType: "application/x-www-form-urlencoded").status == .unauthorized)
            #expect(try await client.send(.post, "/token/revoke", body: "", contentType: "application/x-www-form-urlencoded").status == .badRequest)
            let wrongMode = try await client.send(.post, "/token", json: ["username": "rita", "password": "correct horse battery", "session": "local"])
            #expect(wrongMode.status == .unprocessableContent)
        }
    }

    @Test func prodCookiesAreSecure() async throws {
        let app = try await TestApp.make()
        try await app.database.withDatabase { database in
            let controller = AuthController(
                users: PostgresUserStore(database: database), hasher: PasswordHasher(configuration: .init()), tokens: await TokenService(configuration: app.configuration.tokens),
                throttle: LoginThrottle(database: database, baseBlockSeconds: 1), trustedProxies: [],
                sessions: SessionStore(database: database, lifetime: .seconds(60)),
                accounts: AccountService(database: database, hasher: PasswordHasher(configuration: .init())), secureCookies: true
            )
            #expect(controller.cookie("x", maxAge: 5).hasSuffix("; Secure"))
        }
    }
}
