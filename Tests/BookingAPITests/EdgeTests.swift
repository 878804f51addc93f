import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

@testable import BookingAPI

// Issue 10, "Hold the edge": the login throttle under concurrency, the per-address limit and
// TRUSTED_PROXIES, idle/slow/hoarded connections, a client leaving mid-body, strict dates,
// duplicate JSON keys, canonical ids, HEAD and 405, and parser-level 400s as problem documents.

private let formType = "application/x-www-form-urlencoded"

private func form(_ username: String, _ password: String) -> String {
    let allowed = CharacterSet.alphanumerics
    return "username=\(username.addingPercentEncoding(withAllowedCharacters: allowed)!)&password=\(password.addingPercentEncoding(withAllowedCharacters: allowed)!)"
}

/// Fires all `count` requests at once and collects every answer.
private func simultaneously(
    _ count: Int,
    _ request: @escaping @Sendable (Int) async throws -> TestResponseBody
) async throws -> [(index: Int, response: TestResponseBody)] {
    try await withThrowingTaskGroup(of: (Int, TestResponseBody).self) { group in
        for index in 0..<count {
            group.addTask { (index, try await request(index)) }
        }
        var all: [(index: Int, response: TestResponseBody)] = []
        for try await (index, response) in group { all.append((index, response)) }
        return all
    }
}

/// The fields a 422 names.
private func invalidFields(_ response: TestResponseBody) -> [String] {
    ((response.json["errors"] as? [[String: Any]]) ?? []).compactMap { $0["field"] as? String }
}

/// The sum of the samples of `name` whose labels contain every one of `labels`.
private func metricSum(_ text: String, _ name: String, labels: [String] = []) -> Double {
    var total = 0.0
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { continue }
        guard labels.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
        total += value
    }
    return total
}

/// Every suite of this file, so that `--filter EdgeTests` selects them all.
@Suite struct EdgeTests {}

// MARK: - 1. The login throttle under concurrency

extension EdgeTests {
    @Suite struct LoginThrottleRaceTests {
        /// The block lasts long enough (30 s) that it cannot run out while the burst is answered,
        /// so any sixth checked password is the race, not an expired block.
        static func app() async throws -> TestApp {
            try await TestApp.make {
                $0.loginThrottleBaseSeconds = 30
                $0.hashing = PasswordHashingConfiguration(threads: 2, queueLimit: 64)
                $0.databasePoolSize = 10
            }
        }

        @Test func thirtySimultaneousWrongPasswordsCheckAtMostFive() async throws {
            let app = try await Self.app()
            try await app.createUser("racer", role: .requester)
            try await app.test { client in
                let answers = try await simultaneously(30) { _ in
                    try await client.send(.post, "/token", body: form("racer", "wrong password here"), contentType: formType)
                }
                let checked = answers.filter { $0.response.status == .unauthorized }
                let throttled = answers.filter { $0.response.status == .tooManyRequests }
                #expect(checked.count <= 5, "\(checked.count) passwords were checked")
                #expect(checked.count >= 1)
                #expect(checked.count + throttled.count == 30, "other statuses: \(answers.map { $0.response.status.code })")
                for answer in throttled {
                    let retryAfter = answer.response.headers[.retryAfter].flatMap { Int($0) }
                    #expect(retryAfter.map { $0 >= 1 } == true, "429 without a Retry-After in seconds")
                    #expect(answer.response.headers[.contentType] == "application/problem+json")
                }
                // Blocked now: even the right password is refused unchecked.
                let right = try await client.send(.post, "/token", body: form("racer", "correct horse battery"), contentType: formType)
                #expect(right.status == .tooManyRequests)
                #expect(right.headers[.retryAfter] != nil)
            }
        }

        @Test func twentyNineWrongAndTheRightOneAtOnceCheckAtMostFive() async throws {
            let app = try await Self.app()
            try await app.createUser("racer2", role: .requester)
            try await app.test { client in
                let answers = try await simultaneously(30) { index in
                    let password = index == 17 ? "correct horse battery" : "wrong password here"
                    return try await client.send(.post, "/token", body: form("racer2", password), contentType: formType)
                }
                let notThrottled = answers.filter { $0.response.status != .tooManyRequests }
                #expect(notThrottled.count <= 5, "\(notThrottled.count) answers were not 429: \(notThrottled.map { $0.response.status.code })")
                #expect(notThrottled.allSatisfy { [.unauthorized, .ok].contains($0.response.status) })
            }
        }

        @Test func aSuccessfulLoginResetsTheCount() async throws {
            let app = try await Self.app()
            try await app.createUser("resetter", role: .requester)
            try await app.test { client in
                for attempt in 1...4 {
                    let wrong = try await client.send(.post, "/token", body: form("resetter", "wrong password here"), contentType: formType)
                    #expect(wrong.status == .unauthorized, "attempt \(attempt)")
                }
                #expect(try await client.send(.post, "/token", body: form("resetter", "correct horse battery"), contentType: formType).status == .ok)
                // Without the reset these would be failures 5–8 in a row: some of them would be 429.
                for attempt in 1...4 {
                    let wrong = try await client.send(.post, "/token", body: form("resetter", "wrong password here"), contentType: formType)
                    #expect(wrong.status == .unauthorized, "attempt \(attempt) after the success")
                }
            }
        }
    }
}

// MARK: - 2. The per-address limit and TRUSTED_PROXIES

extension EdgeTests {
    @Suite struct AddressLimitTests {
        static let xff = HTTPField.Name("X-Forwarded-For")!

        /// 50 failed logins spread over 25 usernames (two real), 2 each: no username reaches its
        /// own limit, so every one is checked and answered 401.
        static func spray(_ client: some TestClientProtocol, from address: String) async throws {
            for attempt in 0..<50 {
                let slot = attempt % 25
                let username = slot == 0 ? "victim" : slot == 1 ? "bystander" : "ghost\(slot)"
                let response = try await client.send(
                    .post, "/token", body: form(username, "spray password \(attempt)"), contentType: formType,
                    headers: [xff: address]
                )
                #expect(response.status == .unauthorized, "attempt \(attempt) as \(username): \(response.status)")
            }
        }

        @Test func fiftyFailuresFromOneForwardedAddressBlockItButNotOthers() async throws {
            let app = try await TestApp.make { $0.trustedProxies = [IPNetwork("127.0.0.1/32")!] }
            try await app.createUser("victim", role: .requester)
            try await app.createUser("bystander", role: .requester)
            try await app.test(.live) { client in
                try await Self.spray(client, from: "203.0.113.7")
                let blocked = try await client.send(
                    .post, "/token", body: form("victim", "correct horse battery"), contentType: formType, headers: [Self.xff: "203.0.113.7"]
                )
                #expect(blocked.status == .tooManyRequests)
                #expect(blocked.headers[.retryAfter].flatMap { Int($0) }.map { $0 >= 1 } == true)
                #expect(blocked.headers[.contentType] == "application/problem+json")
                // A proxy that appends the client to what the client sent: the spoofed left part is
                // not believed, the blocked address still is.
                let spoofed = try await client.send(
                    .post, "/token", body: form("victim", "correct horse battery"), contentType: formType,
                    headers: [Self.xff: "198.51.100.99, 203.0.113.7"]
                )
                #expect(spoofed.status == .tooManyRequests)
                let elsewhere = try await client.send(
                    .post, "/token", body: form("victim", "correct horse battery"), contentType: formType, headers: [Self.xff: "203.0.113.8"]
                )
                #expect(elsewhere.status == .ok, "another client behind the same proxy: \(elsewhere.text)")
            }
        }

        @Test func withoutTrustedProxiesTheHeaderIsIgnored() async throws {
            let app = try await TestApp.make()
            #expect(app.configuration.trustedProxies.isEmpty)
            try await app.createUser("victim", role: .requester)
            try await app.createUser("bystander", role: .requester)
            try await app.test(.live) { client in
                try await Self.spray(client, from: "203.0.113.7")
                // Every attempt counted against the peer (127.0.0.1): a new header does not escape.
                let other = try await client.send(
                    .post, "/token", body: form("victim", "correct horse battery"), contentType: formType, headers: [Self.xff: "203.0.113.8"]
                )
                #expect(other.status == .tooManyRequests)
                let none = try await client.send(.post, "/token", body: form("victim", "correct horse battery"), contentType: formType)
                #expect(none.status == .tooManyRequests)
            }
        }
    }
}

extension EdgeTests {
    @Suite struct ClientAddressTests {
        static let proxies = [IPNetwork("10.0.0.0/8")!, IPNetwork("::1/128")!, IPNetwork("127.0.0.1/32")!]

        static func resolve(_ peer: String?, _ forwardedFor: String?, _ trusted: [IPNetwork] = proxies) -> String {
            ClientAddress.resolve(peer: peer, forwardedFor: forwardedFor, trusted: trusted)
        }

        static func same(_ a: String, _ b: String) -> Bool {
            guard let left = IPAddress(a), let right = IPAddress(b) else { return false }
            return left == right
        }

        @Test func anUntrustedPeerIsTheClientWhateverItSends() {
            #expect(Self.resolve("198.51.100.1", "203.0.113.7") == "198.51.100.1")
            #expect(Self.resolve("198.51.100.1", "10.0.0.1") == "198.51.100.1")
            #expect(Self.resolve("10.0.0.1", "203.0.113.7", []) == "10.0.0.1")
            #expect(Self.resolve("198.51.100.1", nil) == "198.51.100.1")
        }

        @Test func aTrustedPeerYieldsTheFirstUntrustedHopFromTheRight() {
            #expect(Self.resolve("10.0.0.1", "203.0.113.7") == "203.0.113.7")
            // What the client wrote itself is left of what the proxy appended, and is not believed.
            #expect(Self.resolve("10.0.0.1", "6.6.6.6, 203.0.113.7") == "203.0.113.7")
            #expect(Self.resolve("10.0.0.1", "6.6.6.6,203.0.113.7") == "203.0.113.7")
            // A trusted peer that forwarded nothing is itself the client.
            #expect(Self.resolve("10.0.0.1", nil) == "10.0.0.1")
        }

        @Test func aChainOfTrustedProxiesIsWalkedThrough() {
            #expect(Self.resolve("10.0.0.1", "203.0.113.7, 10.0.0.3, 10.0.0.2") == "203.0.113.7")
            #expect(Self.resolve("10.0.0.1", "6.6.6.6, 203.0.113.7, 10.9.9.9") == "203.0.113.7")
            // Everything trusted: the leftmost hop is the best there is.
            #expect(Self.resolve("10.0.0.1", "10.0.0.5, 10.0.0.2") == "10.0.0.5")
        }

        @Test func aMalformedHopEndsTheWalk() {
            // Nothing left of a hop that does not parse is believed.
            #expect(Self.resolve("10.0.0.1", "203.0.113.7, not-an-address") == "10.0.0.1")
            #expect(Self.resolve("10.0.0.1", "203.0.113.7, 300.1.1.1, 10.0.0.2") == "10.0.0.2")
            #expect(Self.resolve("10.0.0.1", "203.0.113.7, , 10.0.0.2") != "203.0.113.7")
            #expect(Self.resolve("10.0.0.1", "") == "10.0.0.1")
            #expect(Self.resolve("not an address", "203.0.113.7") != "203.0.113.7")
            #expect(Self.resolve(nil, "203.0.113.7") != "203.0.113.7")
        }

        @Test func ipv6AndIPv4MappedAddresses() {
            #expect(Self.same(Self.resolve("::1", "2001:db8::7"), "2001:db8::7"))
            #expect(Self.same(Self.resolve("::1", "[2001:db8::7]"), "2001:db8::7"))
            #expect(Self.same(Self.resolve("2001:db8::1", "203.0.113.7"), "2001:db8::1"))
            // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; that is the IPv4 address.
            #expect(Self.resolve("::ffff:127.0.0.1", "203.0.113.7") == "203.0.113.7")
            #expect(Self.resolve("::ffff:10.1.2.3", "::ffff:203.0.113.9") == "203.0.113.9")
            #expect(Self.resolve("::ffff:198.51.100.1", "203.0.113.7") == "198.51.100.1")
        }

        @Test func networksContainTheirAddressesOnly() throws {
            let ten = try #require(IPNetwork("10.0.0.0/8"))
            #expect(ten.contains(IPAddress("10.255.1.2")!))
            #expect(!ten.contains(IPAddress("11.0.0.1")!))
            #expect(!ten.contains(IPAddress("::ffff:11.0.0.1")!))
            #expect(ten.contains(IPAddress("::ffff:10.0.0.1")!))
            let half = try #require(IPNetwork("192.168.1.0/25"))
            #expect(half.contains(IPAddress("192.168.1.127")!))
            #expect(!half.contains(IPAddress("192.168.1.128")!))
            let one = try #require(IPNetwork("127.0.0.1"))
            #expect(one.prefixLength == 32)
            #expect(one.contains(IPAddress("127.0.0.1")!))
            #expect(!one.contains(IPAddress("127.0.0.2")!))
            let all = try #require(IPNetwork("0.0.0.0/0"))
            #expect(all.contains(IPAddress("203.0.113.7")!))
            #expect(!all.contains(IPAddress("2001:db8::1")!))
            let v6 = try #require(IPNetwork("2001:db8::/32"))
            #expect(v6.contains(IPAddress("2001:db8:1::1")!))
            #expect(!v6.contains(IPAddress("2001:db9::1")!))
            #expect(!v6.contains(IPAddress("10.0.0.1")!))
            let odd = try #require(IPNetwork("fd00::/7"))
            #expect(odd.contains(IPAddress("fc12::1")!))
            #expect(!odd.contains(IPAddress("fe80::1")!))
            for bad in ["10.0.0.0/33", "::1/129", "10.0.0.0/-1", "10.0.0.0/x", "garbage", "", "10.0.0/8"] {
                #expect(IPNetwork(bad) == nil, "\(bad)")
            }
        }
    }
}

// MARK: - 3. Idle, slow and hoarded connections

extension EdgeTests {
    @Suite struct ConnectionLimitTests {
        /// A limit that must act within 1 s is checked with a 5 s bound: slow machines pass, a
        /// server that never closes fails.
        static let closeBound: Duration = .seconds(5)

        static func port(_ client: some TestClientProtocol) throws -> Int {
            try #require(client.port)
        }

        /// A fresh connection is still served normally.
        static func expectServed(port: Int) async throws {
            let connection = try await RawConnection.open(port: port)
            try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            connection.close()
        }

        @Test func aConnectionThatSendsNothingIsClosed() async throws {
            let app = try await TestApp.make {
                $0.httpIdleTimeout = .seconds(1)
                $0.httpReadTimeout = .seconds(1)
            }
            try await app.test(.live) { client in
                let port = try Self.port(client)
                let connection = try await RawConnection.open(port: port)
                let started = ContinuousClock.now
                let closed = await connection.waitForClose(timeout: Self.closeBound)
                #expect(closed, "an idle connection was still open after \(Self.closeBound)")
                #expect(ContinuousClock.now - started < Self.closeBound)
                try await Self.expectServed(port: port)
            }
        }

        @Test func aHeadDeliveredByteByByteIsClosedAtTheReadTimeout() async throws {
            // A long idle timeout: only the read timeout can end this connection, whose bytes keep
            // arriving.
            let app = try await TestApp.make {
                $0.httpIdleTimeout = .seconds(60)
                $0.httpReadTimeout = .seconds(1)
            }
            try await app.test(.live) { client in
                let port = try Self.port(client)
                let connection = try await RawConnection.open(port: port)
                let started = ContinuousClock.now
                try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                var closed = false
                while ContinuousClock.now - started < Self.closeBound {
                    do {
                        try await connection.send("a")
                    } catch {
                        closed = true
                        break
                    }
                    if await connection.waitForClose(timeout: .milliseconds(200)) {
                        closed = true
                        break
                    }
                }
                #expect(closed, "a slowloris head was still being read after \(Self.closeBound)")
                try await Self.expectServed(port: port)
            }
        }

        @Test func aBodyThatNeverCompletesIsClosedAtTheReadTimeout() async throws {
            let app = try await TestApp.make {
                $0.httpIdleTimeout = .seconds(60)
                $0.httpReadTimeout = .seconds(1)
            }
            try await app.test(.live) { client in
                let port = try Self.port(client)
                let connection = try await RawConnection.open(port: port)
                try await connection.send(
                    "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: \(formType)\r\nContent-Length: 100\r\n\r\nusername=a"
                )
                let closed = await connection.waitForClose(timeout: Self.closeBound)
                #expect(closed, "a connection owing 90 body bytes was still open after \(Self.closeBound)")
                try await Self.expectServed(port: port)
            }
        }

        @Test func aKeepAliveConnectionLeftOpenIsClosed() async throws {
            let app = try await TestApp.make {
                $0.httpIdleTimeout = .seconds(1)
                $0.httpReadTimeout = .seconds(1)
            }
            try await app.test(.live) { client in
                let port = try Self.port(client)
                let connection = try await RawConnection.open(port: port)
                try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let response = try await connection.readResponse()
                #expect(response.status == 200)
                #expect(response.header("Connection")?.lowercased() != "close")
                let closed = await connection.waitForClose(timeout: Self.closeBound)
                #expect(closed, "a keep-alive connection left idle was still open after \(Self.closeBound)")
                try await Self.expectServed(port: port)
            }
        }

        @Test func pastTheConnectionCapANewConnectionGetsA503AndIsClosed() async throws {
            let app = try await TestApp.make {
                $0.maxConnections = 3
                $0.httpIdleTimeout = .seconds(60)
                $0.httpReadTimeout = .seconds(30)
            }
            try await app.test(.live) { client in
                let port = try Self.port(client)
                // The live test client holds the first of the three connections; a request on it
                // makes sure it is established (and counted) before the others.
                #expect(try await client.send(.get, "/healthz").status == .ok)
                var held: [RawConnection] = []
                for _ in 0..<2 {
                    let connection = try await RawConnection.open(port: port)
                    try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    #expect(try await connection.readResponse().status == 200)
                    held.append(connection)  // and now idle, kept open
                }

                let refused = try await RawConnection.open(port: port)
                let answer = try await refused.readResponse()
                #expect(answer.status == 503)
                #expect(answer.header("Content-Type") == "application/problem+json")
                #expect(answer.header("Retry-After").flatMap { Int($0) }.map { $0 >= 1 } == true)
                #expect(answer.header("X-Request-ID")?.isEmpty == false)
                #expect(answer.json["status"] as? Int == 503)
                #expect(await refused.waitForClose(timeout: Self.closeBound), "the refused connection was left open")

                // The held ones are unharmed.
                try await held[0].send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await held[0].readResponse().status == 200)

                for connection in held { connection.close() }
                // The server notices the closes asynchronously: a new connection is served within
                // a few seconds.
                let deadline = ContinuousClock.now + .seconds(5)
                var served = false
                while !served && ContinuousClock.now < deadline {
                    let connection = try await RawConnection.open(port: port)
                    try? await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if let response = try? await connection.readResponse(timeout: .seconds(5)) {
                        served = response.status == 200
                    }
                    connection.close()
                    if !served { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(served, "no connection was served after the held ones closed")
            }
        }
    }
}

// MARK: - 4. A client that leaves mid-body

extension EdgeTests {
    @Suite struct AbandonedRequestTests {
        @Test func aClientLeavingMidBodyIsNeitherA500NorAnErrorLogLine() async throws {
            _ = metricsBootstrap
            let capture = LogCapture()
            var logger = Logger(label: "booking-api") { capture.handler(label: $0) }
            logger.logLevel = .info
            let app = try await TestApp.make()
            try await app.createUser("leaver", role: .requester)
            let built = try await buildApplication(app.configuration, logger: logger)
            try await built.test(.live) { client in
                let port = try #require(client.port)
                let token = try await client.token("leaver")
                let before = try await client.send(.get, "/metrics").text

                let connection = try await RawConnection.open(port: port)
                try await connection.send(
                    "POST /booking HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"topic\":\""
                )
                // Let the request reach the handler (authenticated, waiting on the body), then leave.
                try await Task.sleep(for: .milliseconds(300))
                connection.close()

                // The counter moves once the server has noticed; wait for it (bounded).
                let abandonedBefore = metricSum(before, "http_requests_abandoned_total")
                var after = before
                let deadline = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < deadline {
                    after = try await client.send(.get, "/metrics").text
                    if metricSum(after, "http_requests_abandoned_total") >= abandonedBefore + 1 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                // Let any late log line or 500 count land before looking.
                try await Task.sleep(for: .milliseconds(300))
                after = try await client.send(.get, "/metrics").text
                #expect(metricSum(after, "http_requests_abandoned_total") >= abandonedBefore + 1, "the abandoned request was not counted")
                let post500 = [#"method="POST""#, #"status="500""#]
                #expect(
                    metricSum(after, "http_requests_total", labels: post500) == metricSum(before, "http_requests_total", labels: post500),
                    "a POST was counted as a 500"
                )
            }
            let logs = capture.text
            #expect(!logs.contains("unhandled error"), "\(logs)")
            let errorLines = logs.split(separator: "\n").filter { $0.hasPrefix("error ") || $0.hasPrefix("critical ") }
            #expect(errorLines.isEmpty, "error log lines: \(errorLines)")
        }
    }
}

// MARK: - 5. Dates

extension EdgeTests {
    @Suite struct StrictDateTests {
        static func submit(_ client: some TestClientProtocol, token: String, eventTime: String) async throws -> TestResponseBody {
            var body = bookingBody()
            body["event_time"] = eventTime
            return try await client.send(.post, "/booking", token: token, json: body)
        }

        static let impossible = [
            "2027-02-30T10:00:00Z",  // not March 2nd
            "2027-04-31T10:00:00Z",  // not May 1st
            "2028-02-30T00:00:00Z",  // a leap year has 29
            "2027-02-29T10:00:00Z",  // not a leap year
            "275760-01-01T00:00:00Z",  // not year 5760
            "9999-12-31T23:00:00-05:00",  // 10000-01-01 in UTC
            "10000-01-01T00:00:00Z",
            "2027-13-01T00:00:00Z",
            "2027-00-10T00:00:00Z",
            "2027-01-00T00:00:00Z",
            "2027-01-01T24:00:00Z",
            "2027-01-01T10:60:00Z",
            "2027-01-01T10:00:60Z",
            "2027-01-01T10:00:00",  // no offset
            "2027-01-01T10:00:00+24:00",
            "2027-01-01",
            "2027-01-01T10:00:00.Z",
            "+2027-01-01T10:00:00Z",
        ]

        @Test func impossibleDateTimesAre422() async throws {
            let app = try await TestApp.make()
            try await app.createUser("dater", role: .requester)
            try await app.test { client in
                let token = try await client.token("dater")
                for eventTime in Self.impossible {
                    let response = try await Self.submit(client, token: token, eventTime: eventTime)
                    #expect(response.status == .unprocessableContent, "\(eventTime): \(response.status) \(response.text)")
                    #expect(invalidFields(response) == ["event_time"], "\(eventTime): \(response.text)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(eventTime)")
                }
                // None of them was stored, bent into another date.
                let list = try await client.send(.get, "/booking", token: token)
                #expect((list.json["bookings"] as? [Any])?.isEmpty == true, "\(list.text)")
            }
        }

        @Test func aLeapDayIsAccepted() async throws {
            let app = try await TestApp.make()
            try await app.createUser("leaper", role: .requester)
            try await app.test { client in
                let token = try await client.token("leaper")
                let response = try await Self.submit(client, token: token, eventTime: "2028-02-29T10:00:00Z")
                #expect(response.status == .created, "\(response.text)")
                #expect(response.json["event_time"] as? String == "2028-02-29T10:00:00Z")
                let late = try await Self.submit(client, token: token, eventTime: "9999-12-31T23:59:59Z")
                #expect(late.status == .created, "the last second of 9999 is a real date: \(late.text)")
                #expect(late.json["event_time"] as? String == "9999-12-31T23:59:59Z")
            }
        }

        /// The UTC instant, to the microsecond, that PostgreSQL holds for booking `id`.
        static func stored(_ app: TestApp, _ id: Int) async throws -> String? {
            try await app.database.scalar(
                "SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM bookings WHERE id = \(id)",
                as: String.self
            )
        }

        @Test func anOffsetRoundTripsAsTheUTCInstantExactly() async throws {
            let app = try await TestApp.make()
            try await app.createUser("precise", role: .requester)
            try await app.test { client in
                let token = try await client.token("precise")
                for given in ["2030-06-15T10:20:30+02:00", "2030-06-15T10:20:30.000+02:00", "2030-06-15T03:50:30-04:30"] {
                    let created = try await Self.submit(client, token: token, eventTime: given)
                    #expect(created.status == .created, "\(given): \(created.text)")
                    let id = try #require(created.json["id"] as? Int)
                    #expect(try await Self.stored(app, id) == "2030-06-15T08:20:30.000000Z", "\(given)")
                    #expect(created.json["event_time"] as? String == "2030-06-15T08:20:30Z", "\(given): \(created.text)")
                    let read = try await client.send(.get, "/booking/\(id)", token: token)
                    #expect(read.json["event_time"] as? String == "2030-06-15T08:20:30Z", "\(given): \(read.text)")
                }
            }
        }

        /// A fraction of a second is never bent: either refused (422 on `event_time`), or
        /// stored and returned as exactly that instant in UTC. What is not allowed is storing
        /// `.123456` and answering whole seconds, or storing a rounded value.
        @Test func microsecondsAreRefusedOrKeptExactlyNeverTruncated() async throws {
            let app = try await TestApp.make()
            try await app.createUser("fraction", role: .requester)
            try await app.test { client in
                let token = try await client.token("fraction")
                let created = try await Self.submit(client, token: token, eventTime: "2030-06-15T10:20:30.123456+02:00")
                if created.status == .unprocessableContent {
                    #expect(invalidFields(created) == ["event_time"], "\(created.text)")
                    let list = try await client.send(.get, "/booking", token: token)
                    #expect((list.json["bookings"] as? [Any])?.isEmpty == true)
                } else {
                    #expect(created.status == .created, "\(created.text)")
                    let id = try #require(created.json["id"] as? Int)
                    #expect(try await Self.stored(app, id) == "2030-06-15T08:20:30.123456Z")
                    #expect(created.json["event_time"] as? String == "2030-06-15T08:20:30.123456Z", "\(created.text)")
                    let read = try await client.send(.get, "/booking/\(id)", token: token)
                    #expect(read.json["event_time"] as? String == "2030-06-15T08:20:30.123456Z", "\(read.text)")
                }
            }
        }
    }
}

// MARK: - 6. Duplicate keys

extension EdgeTests {
    @Suite struct DuplicateKeyTests {
        static func bookingJSON(topic: String = #""topic":"a""#, address: String = #""street":"1 Chome","city":"Tokyo","country":"JP""#) -> String {
            #"{\#(topic),"event_time":"2031-01-01T10:00:00Z","duration_minutes":60,"address":{\#(address)},"requested_by":"o@example.com"}"#
        }

        @Test func aBookingWithARepeatedKeyIs400() async throws {
            let app = try await TestApp.make()
            try await app.createUser("twice", role: .requester)
            try await app.test { client in
                let token = try await client.token("twice")
                // The same body without the repetition is accepted: the 400s below are the keys.
                let plain = try await client.send(.post, "/booking", token: token, body: Self.bookingJSON(), contentType: "application/json")
                #expect(plain.status == .created, "\(plain.text)")

                let cases = [
                    "plain": Self.bookingJSON(topic: #""topic":"a","topic":"b""#),
                    "escaped": Self.bookingJSON(topic: #""topic":"a","\u0074opic":"b""#),
                    "nested": Self.bookingJSON(address: #""street":"1 Chome","city":"Tokyo","city":"Kyoto","country":"JP""#),
                ]
                for (name, body) in cases {
                    let response = try await client.send(.post, "/booking", token: token, body: body, contentType: "application/json")
                    #expect(response.status == .badRequest, "\(name): \(response.status) \(response.text)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(name)")
                    #expect(response.json["status"] as? Int == 400, "\(name)")
                    #expect(response.json["errors"] == nil, "\(name): errors belong to 422 only")
                }
                // Nothing of them was stored.
                let list = try await client.send(.get, "/booking", token: token)
                #expect((list.json["bookings"] as? [Any])?.count == 1)
            }
        }

        @Test func aLoginWithARepeatedUsernameIs400() async throws {
            let app = try await TestApp.make()
            try await app.createUser("first", role: .requester)
            try await app.test { client in
                let body = #"{"username":"first","username":"second","password":"correct horse battery"}"#
                let response = try await client.send(.post, "/token", body: body, contentType: "application/json")
                #expect(response.status == .badRequest, "\(response.status) \(response.text)")
                #expect(response.headers[.contentType] == "application/problem+json")
                let escaped = #"{"username":"first","\u0075sername":"first","password":"correct horse battery"}"#
                #expect(try await client.send(.post, "/token", body: escaped, contentType: "application/json").status == .badRequest)
            }
        }
    }
}

// MARK: - 7. Canonical ids

extension EdgeTests {
    @Suite struct CanonicalIDTests {
        @Test func onlyTheCanonicalDecimalNamesABooking() async throws {
            let app = try await TestApp.make()
            try await app.createUser("root", role: .admin)
            try await app.test { client in
                let token = try await client.token("root")
                let created = try await client.send(.post, "/booking", token: token, json: bookingBody())
                let id = try #require(created.json["id"] as? Int)
                #expect(try await client.send(.get, "/booking/\(id)", token: token).status == .ok)
                for path in ["/booking/+\(id)", "/booking/0\(id)", "/booking/00\(id)", "/booking/\(id).0", "/booking/%20\(id)", "/booking/\(id)%20", "/booking/%2B\(id)", "/booking/\(id)e0"] {
                    let response = try await client.send(.get, path, token: token)
                    #expect(response.status == .notFound, "\(path): \(response.status)")
                    #expect(response.headers[.contentType] == "application/problem+json", "\(path)")
                }
            }
        }
    }
}

// MARK: - 8. HEAD and 405

extension EdgeTests {
    @Suite struct MethodTests {
        @Test func headAnswersWhereverGetDoes() async throws {
            let app = try await TestApp.make()
            try await app.createUser("header", role: .requester)
            try await app.test { client in
                let get = try await client.send(.get, "/healthz")
                let head = try await client.send(.head, "/healthz")
                #expect(head.status == .ok)
                #expect(head.data.isEmpty)
                let getLength = get.headers[.contentLength] ?? String(get.data.count)
                #expect(head.headers[.contentLength] == getLength)
                #expect(head.headers[.contentType] == get.headers[.contentType])

                let token = try await client.token("header")
                let list = try await client.send(.head, "/booking", token: token)
                #expect(list.status == .ok)
                #expect(list.data.isEmpty)
                #expect(try await client.send(.head, "/booking").status == .unauthorized)
                let ping = try await client.send(.head, "/ping")
                #expect(ping.status == .ok)
                #expect(ping.data.isEmpty)
            }
        }

        @Test func headOnTheWireCarriesTheGetLength() async throws {
            let app = try await TestApp.make()
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let connection = try await RawConnection.open(port: port)
                try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let get = try await connection.readResponse()
                try await connection.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let head = try await connection.readResponse(head: true)
                #expect(head.status == 200)
                #expect(head.header("Content-Length") == get.header("Content-Length"))
                #expect(get.header("Content-Length") == String(get.body.count))
                // No body followed the HEAD answer: the next answer on the connection is intact.
                try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await connection.readResponse().status == 200)
            }
        }

        @Test func aKnownPathWithAnUnservedMethodIs405WithAllow() async throws {
            let app = try await TestApp.make()
            try await app.createUser("methodical", role: .requester)
            try await app.test { client in
                let delete = try await client.send(.delete, "/healthz")
                #expect(delete.status == .methodNotAllowed)
                #expect(delete.headers[.allow] == "GET, HEAD")
                #expect(delete.headers[.contentType] == "application/problem+json")
                #expect(delete.json["status"] as? Int == 405)

                let token = try await client.token("methodical")
                let put = try await client.send(.put, "/booking", token: token, json: bookingBody())
                #expect(put.status == .methodNotAllowed)
                let allowed = Set((put.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                #expect(allowed.isSuperset(of: ["GET", "HEAD", "POST"]), "Allow: \(put.headers[.allow] ?? "none")")
                #expect(!allowed.contains("PUT"))
                #expect(put.headers[.contentType] == "application/problem+json")

                let unknown = try await client.send(.get, "/no-such-path")
                #expect(unknown.status == .notFound)
                #expect(unknown.headers[.contentType] == "application/problem+json")
                let unknownMethod = try await client.send(.delete, "/no-such-path")
                #expect(unknownMethod.status == .notFound)
            }
        }
    }
}

// MARK: - 9. Parser-level 400s

extension EdgeTests {
    @Suite struct ParserErrorTests {
        static func expectProblem400(_ request: [UInt8], _ name: String) async throws {
            let app = try await TestApp.make()
            try await app.test(.live) { client in
                let port = try #require(client.port)
                let connection = try await RawConnection.open(port: port)
                // The server may answer and close before reading all of it.
                try? await connection.send(request)
                let response = try await connection.readResponse()
                #expect(response.status == 400, "\(name)")
                #expect(response.header("Content-Type") == "application/problem+json", "\(name): \(response.headers)")
                #expect(response.header("X-Request-ID")?.isEmpty == false, "\(name): no X-Request-ID")
                #expect(response.json["status"] as? Int == 400, "\(name): body \(response.text)")
                #expect(response.json["title"] as? String == "Bad Request", "\(name)")
                #expect(await connection.waitForClose(timeout: .seconds(5)), "\(name): the connection stayed open")
                // The server is fine.
                let next = try await RawConnection.open(port: port)
                try await next.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await next.readResponse().status == 200)
            }
        }

        @Test func tooManyHeaders() async throws {
            var text = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
            for index in 0..<1001 { text += "X-H\(index): v\r\n" }
            text += "\r\n"
            try await Self.expectProblem400(Array(text.utf8), "1,001 headers")
        }

        @Test func aHugeHeader() async throws {
            let text = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 90 * 1024))\r\n\r\n"
            try await Self.expectProblem400(Array(text.utf8), "a 90 KiB header")
        }

        @Test func anUnknownMethod() async throws {
            try await Self.expectProblem400(Array("FOO / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), "method FOO")
        }

        @Test func aPathThatIsNotUTF8() async throws {
            let request = Array("GET /booking/".utf8) + [0xFF, 0xFE] + Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            try await Self.expectProblem400(request, "a path with bytes FF FE")
        }
    }
}
