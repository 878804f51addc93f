import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import Synchronization
import Testing

@testable import BookingAPI

/// Creates a subscription; returns its id and secret.
func subscribe(
    _ client: some TestClientProtocol, token: String, url: String, events: [String] = ["*"]
) async throws -> (id: Int, secret: String) {
    let response = try await client.send(.post, "/webhooks", token: token, json: ["url": url, "events": events, "description": "test receiver"])
    guard response.status == .created, let id = response.json["id"] as? Int, let secret = response.json["secret"] as? String else {
        throw TestSetupError("subscribing failed: \(response.status) \(response.text)")
    }
    return (id, secret)
}

/// An app whose webhooks may go to loopback, retrying after ~0.2 s instead of ~5 s.
func webhookApp(allowPrivate: Bool = true, poll: Duration = .seconds(2)) async throws -> TestApp {
    try await TestApp.make { configuration in
        configuration.webhookAllowPrivateNetworks = allowPrivate
        configuration.webhookRetryBase = .milliseconds(200)
        configuration.webhookPollInterval = poll
    }
}

@Suite struct WebhookSubscriptionTests {
    @Test func subscriptionsAreCreatedListedChangedAndDeleted() async throws {
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let token = try await client.token("ada")
            let created = try await client.send(
                .post, "/webhooks", token: token,
                json: ["url": "http://127.0.0.1:9/hook", "events": ["booking.accepted", "booking.accepted", "user.created"], "description": "chat"]
            )
            #expect(created.status == .created, "\(created.text)")
            #expect(created.headers[.cacheControl] == "no-store")
            let id = try #require(created.json["id"] as? Int)
            #expect(created.headers[.location] == "/webhooks/\(id)")
            let secret = try #require(created.json["secret"] as? String)
            #expect(secret.hasPrefix("whsec_"))
            #expect(Data(base64Encoded: String(secret.dropFirst(6)))?.count == 32)
            #expect(created.json["events"] as? [String] == ["booking.accepted", "user.created"], "duplicates dropped")

            let listed = try await client.send(.get, "/webhooks", token: token)
            #expect(listed.status == .ok)
            #expect(!listed.text.contains(String(secret.dropFirst(6))), "the secret is shown once only")
            let one = try await client.send(.get, "/webhooks/\(id)", token: token)
            #expect(one.json["url"] as? String == "http://127.0.0.1:9/hook")
            #expect(one.json["secret"] == nil)
            #expect(one.json.keys.contains("disabled_reason"))

            let patched = try await client.send(.patch, "/webhooks/\(id)", token: token, json: ["events": ["*"], "description": NSNull(), "disabled": true])
            #expect(patched.status == .ok, "\(patched.text)")
            #expect(patched.json["events"] as? [String] == ["*"])
            #expect(patched.json["description"] is NSNull)
            #expect(patched.json["disabled"] as? Bool == true)
            #expect(patched.json["disabled_reason"] as? String == "admin")
            let unchanged = try await client.send(.patch, "/webhooks/\(id)", token: token, json: [String: Any]())
            #expect(unchanged.status == .ok, "an empty patch changes nothing: \(unchanged.text)")
            #expect(unchanged.json["events"] as? [String] == ["*"])
            let enabled = try await client.send(.patch, "/webhooks/\(id)", token: token, json: ["disabled": false])
            #expect(enabled.json["disabled_reason"] is NSNull)

            #expect(try await client.send(.delete, "/webhooks/\(id)", token: token).status == .noContent)
            #expect(try await client.send(.get, "/webhooks/\(id)", token: token).status == .notFound)
            #expect(try await client.send(.delete, "/webhooks/\(id)", token: token).status == .notFound)
            #expect(try await client.send(.patch, "/webhooks/\(id)", token: token, json: ["disabled": true]).status == .notFound)
            #expect(try await client.send(.post, "/webhooks/\(id)/secret", token: token).status == .notFound)
            #expect(try await client.send(.post, "/webhooks/\(id)/ping", token: token).status == .notFound)
            #expect(try await client.send(.get, "/webhooks/\(id)/deliveries", token: token).status == .notFound)
            #expect(try await client.send(.get, "/webhooks/abc", token: token).status == .notFound)

            let audit = try await client.send(.get, "/audit?target_type=webhook", token: token)
            let actions = (audit.json["events"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            #expect(actions.filter { $0 == "webhook.created" }.count == 1, "\(audit.text)")
            #expect(actions.filter { $0 == "webhook.updated" }.count == 2)
            #expect(actions.filter { $0 == "webhook.deleted" }.count == 1)
            #expect(!audit.text.contains(String(secret.dropFirst(6))))
        }
        // The secret is stored to sign with, and never in the audit trail.
        let stored = try await app.database.scalar("SELECT count(*) FROM webhook_subscriptions", as: Int.self)
        #expect(stored == 0)
    }

    @Test func badSubscriptionsAreRefusedFieldByField() async throws {
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let token = try await client.token("ada")
            let cases: [([String: Any], [String])] = [
                ([:], ["events", "url"]),
                (["url": "http://127.0.0.1:9/", "events": []], ["events"]),
                (["url": "http://127.0.0.1:9/", "events": ["booking.exploded"]], ["events.0"]),
                (["url": "http://127.0.0.1:9/", "events": ["*", "booking.accepted"]], ["events"]),
                (["url": "http://127.0.0.1:9/", "events": ["webhook.ping"]], ["events.0"]),
                (["url": "ftp://127.0.0.1/", "events": ["*"]], ["url"]),
                (["url": "http://user:pw@127.0.0.1/", "events": ["*"]], ["url"]),
                (["url": "/relative", "events": ["*"]], ["url"]),
                (["url": "https://no-such-host.invalid/", "events": ["*"]], ["url"]),
                (["url": 5, "events": "*"], ["events", "url"]),
                (["url": "http://127.0.0.1:9/", "events": ["*"], "secret": "mine"], ["secret"]),
            ]
            for (body, fields) in cases {
                let response = try await client.send(.post, "/webhooks", token: token, json: body)
                #expect(response.status == .unprocessableContent, "\(body): \(response.text)")
                let reported = (response.json["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }.sorted()
                #expect(reported == fields, "\(body): \(response.text)")
            }
            #expect(try await app.database.scalar("SELECT count(*) FROM webhook_subscriptions", as: Int.self) == 0, "nothing was stored")
        }
    }

    @Test func privateAndLocalAddressesAreRefused() async throws {
        let app = try await webhookApp(allowPrivate: false)
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let token = try await client.token("ada")
            for url in [
                "https://127.0.0.1/hook", "https://localhost/hook", "https://10.1.2.3/", "https://172.16.0.1/", "https://192.168.1.1/",
                "https://169.254.169.254/latest/meta-data", "https://224.0.0.1/", "https://[::1]/", "https://[fe80::1]/", "https://[fd00::1]/",
                "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/", "https://100.64.0.1/",
                "http://93.184.215.14/",  // a public address, but plain http is for private deployments only
            ] {
                let response = try await client.send(.post, "/webhooks", token: token, json: ["url": url, "events": ["*"]])
                #expect(response.status == .unprocessableContent, "\(url): \(response.text)")
                #expect(response.text.contains(#""field":"url""#), "\(url): \(response.text)")
            }
            // A public address is accepted (nothing is sent until an event).
            let accepted = try await client.send(.post, "/webhooks", token: token, json: ["url": "https://93.184.215.14/hook", "events": ["*"]])
            #expect(accepted.status == .created, "\(accepted.text)")
            let id = try #require(accepted.json["id"] as? Int)
            let moved = try await client.send(.patch, "/webhooks/\(id)", token: token, json: ["url": "https://127.0.0.1/"])
            #expect(moved.status == .unprocessableContent, "a PATCH is checked like a POST")
        }
    }

    @Test func addressRulesCoverEachRange() {
        for refused in ["127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.1.1", "224.0.0.251", "255.255.255.255",
                        "0.0.0.0", "100.64.1.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:10.0.0.1", "64:ff9b::a00:1"] {
            #expect(!WebhookAddress.isAllowed(IPAddress(refused)!), "\(refused)")
        }
        for allowed in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"] {
            #expect(WebhookAddress.isAllowed(IPAddress(allowed)!), "\(allowed)")
        }
    }

    @Test func retriesBackOffForADayAndAtLeastEightAttempts() {
        let created = Date()
        // Success, Gone, and a failure's first retry no later than 10 s (base 5 s ± 20 %).
        #expect(WebhookDispatcher.decide(.status(204), attempt: 1, deliveryCreated: created, retryBase: .seconds(5)).state == "delivered")
        let gone = WebhookDispatcher.decide(.status(410), attempt: 1, deliveryCreated: created, retryBase: .seconds(5))
        #expect(gone.state == "failed" && gone.gone)
        for _ in 0..<200 {
            let first = WebhookDispatcher.decide(.status(500), attempt: 1, deliveryCreated: created, retryBase: .seconds(5), now: created)
            #expect(first.state == "pending")
            #expect((4...6).contains(first.next.timeIntervalSince(created)), "first retry after \(first.next.timeIntervalSince(created)) s")
        }
        // Walk a delivery that always fails: it is given up only past 24 hours and 8 attempts.
        var now = created
        var attempt = 1
        while true {
            let decision = WebhookDispatcher.decide(.error("refused"), attempt: attempt, deliveryCreated: created, retryBase: .seconds(5), now: now)
            if decision.state == "failed" { break }
            #expect(decision.next > now)
            #expect(decision.next.timeIntervalSince(now) <= 4 * 3600 * 1.2 + 1, "no gap longer than the cap")
            now = decision.next
            attempt += 1
            try? #require(attempt < 100)
        }
        #expect(attempt >= 8)
        #expect(now.timeIntervalSince(created) >= 86_400)
        #expect(now.timeIntervalSince(created) < 86_400 + 5 * 3600, "not much beyond the day")
    }
}

@Suite struct WebhookDeliveryTests {
    @Test func eventsAreSignedPerStandardWebhooksAndCarryWhatTheAPIShowed() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        // Polling is off (an hour): only LISTEN/NOTIFY can wake the dispatcher in this test.
        let app = try await webhookApp(poll: .seconds(3600))
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("ada")
            let rita = try await client.token("rita")
            let (_, secret) = try await subscribe(client, token: admin, url: receiver.url())
            let submitted = try await client.send(.post, "/booking", token: rita, json: bookingBody())
            let id = try #require(submitted.json["id"] as? Int)
            let accepted = try await client.send(.post, "/booking/accept", token: admin, json: ["id": id, "note": "ok"])
            #expect(accepted.status == .ok)
            let got = try await receiver.wait { $0.count >= 2 }
            #expect(got.count == 2)
            let verified = try await verifyWebhooks(got, secrets: [secret, WebhookSignature.text(Array(repeating: 7, count: 32))])
            #expect(verified == [[true, false], [true, false]], "signatures checked by the standardwebhooks package")
            let byType = Dictionary(got.map { ($0.type, $0) }, uniquingKeysWith: { first, _ in first })
            let submittedEvent = try #require(byType["booking.submitted"])
            let acceptedEvent = try #require(byType["booking.accepted"])
            for event in got {
                #expect(event.headers["content-type"] == "application/json")
                #expect(event.json["id"] as? String == event.id, "webhook-id is the event id")
                #expect(event.id.hasPrefix("evt_"))
                let timestamp = try #require(Int(event.headers["webhook-timestamp"] ?? ""))
                #expect(abs(Double(timestamp) - Date().timeIntervalSince1970) < 300)
                #expect((event.json["timestamp"] as? String)?.hasSuffix("Z") == true)
            }
            // `data` is byte for byte the booking as the API answered at that change.
            #expect(jsonBytes(of: "data", in: submittedEvent.body) == Array(submitted.data))
            #expect(jsonBytes(of: "data", in: acceptedEvent.body) == Array(accepted.data))
        }
    }

    @Test func failedAttemptsAreRetriedWithTheSameIDAndRecorded() async throws {
        let receiver = try await WebhookReceiver.start { _, earlier in earlier < 2 ? .internalServerError : .ok }
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, secret) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "newbie", "role": "requester"]).status == .created)
            let got = try await receiver.wait { $0.count >= 3 }
            #expect(Set(got.map(\.id)).count == 1, "every retry carries the same webhook-id")
            #expect(got.allSatisfy { $0.body == got[0].body }, "and the same body")
            #expect(try await verifyWebhooks(got, secrets: [secret]).allSatisfy { $0 == [true] })
            let deliveries = try await waitForDelivery(client, token: admin, hook: hook) { $0["state"] as? String == "delivered" }
            #expect(deliveries["attempts"] as? Int == 3)
            #expect(deliveries["last_status"] as? Int == 200)
            #expect(deliveries["next_attempt_at"] is NSNull)
            let deliveryID = try #require(deliveries["id"] as? Int)
            let detail = try await client.send(.get, "/webhooks/\(hook)/deliveries/\(deliveryID)", token: admin)
            let attempts = try #require(detail.json["attempt_history"] as? [[String: Any]])
            #expect(attempts.compactMap { $0["status"] as? Int } == [500, 500, 200])
            #expect(attempts.compactMap { $0["number"] as? Int } == [1, 2, 3])
            try await Task.sleep(for: .seconds(1))
            #expect(receiver.all.count == 3, "nothing more after the 2xx")
            let metrics = try await client.send(.get, "/metrics").text
            #expect(metrics.contains(#"webhook_deliveries_total{outcome="delivered"}"#), "\(metrics.prefix(3000))")
            #expect(metrics.contains(#"webhook_deliveries_total{outcome="retried"}"#))
            #expect(metrics.contains("webhook_delivery_latency_seconds_bucket"))
            #expect(metrics.contains("# TYPE webhook_outbox_backlog gauge"))
            #expect(metrics.contains("# TYPE webhook_outbox_oldest_seconds gauge"))
        }
    }

    @Test func goneDisablesTheSubscription() async throws {
        let receiver = try await WebhookReceiver.start { _, _ in .gone }
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, _) = try await subscribe(client, token: admin, url: receiver.url())
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "one", "role": "requester"]).status == .created)
            try await receiver.wait { $0.count >= 1 }
            let delivery = try await waitForDelivery(client, token: admin, hook: hook) { $0["state"] as? String == "failed" }
            #expect(delivery["last_status"] as? Int == 410)
            let subscription = try await client.send(.get, "/webhooks/\(hook)", token: admin)
            #expect(subscription.json["disabled"] as? Bool == true)
            #expect(subscription.json["disabled_reason"] as? String == "gone")
            // Later events are not queued for it, and a ping is refused while it is disabled.
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "two", "role": "requester"]).status == .created)
            #expect(try await client.send(.post, "/webhooks/\(hook)/ping", token: admin).status == .conflict)
            try await Task.sleep(for: .seconds(1))
            #expect(receiver.all.count == 1)
            #expect(try await app.database.scalar("SELECT count(*) FROM webhook_deliveries", as: Int.self) == 1)
        }
    }

    @Test func subscriptionsGetOnlyTheTypesTheyAskFor() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("ada")
            let rita = try await client.token("rita")
            _ = try await subscribe(client, token: admin, url: receiver.url("decisions"), events: ["booking.accepted", "booking.rejected"])
            _ = try await subscribe(client, token: admin, url: receiver.url("all"), events: ["*"])
            let deleted = try await subscribe(client, token: admin, url: receiver.url("deleted"), events: ["*"])
            #expect(try await client.send(.delete, "/webhooks/\(deleted.id)", token: admin).status == .noContent)
            let first = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: 100))
            let second = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: 200))
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": first]).status == .ok)
            #expect(try await client.send(.post, "/booking/reject", token: admin, json: ["id": second, "note": "no"]).status == .ok)
            #expect(try await client.send(.post, "/booking/\(first)/cancel", token: rita).status == .ok)
            #expect(try await client.send(.delete, "/booking/\(second)", token: admin).status == .ok)
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "x1", "role": "requester"]).status == .created)
            let got = try await receiver.wait { items in items.filter { $0.path == "all" }.count >= 7 && items.filter { $0.path == "decisions" }.count >= 2 }
            #expect(got.filter { $0.path == "decisions" }.map(\.type).sorted() == ["booking.accepted", "booking.rejected"])
            #expect(got.filter { $0.path == "all" }.map(\.type).sorted() == [
                "booking.accepted", "booking.cancelled", "booking.deleted", "booking.rejected", "booking.submitted", "booking.submitted", "user.created",
            ])
            try await Task.sleep(for: .seconds(1))
            #expect(receiver.all.filter { $0.path == "deleted" }.isEmpty, "nothing is sent to a deleted subscription")
            #expect(receiver.all.count == 9, "nothing twice")
        }
    }

    @Test func rotationSignsWithBothSecretsForADay() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, old) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            let rotated = try await client.send(.post, "/webhooks/\(hook)/secret", token: admin)
            #expect(rotated.status == .ok)
            #expect(rotated.headers[.cacheControl] == "no-store")
            let new = try #require(rotated.json["secret"] as? String)
            #expect(new != old && new.hasPrefix("whsec_"))
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "during", "role": "requester"]).status == .created)
            let during = try await receiver.wait { $0.count >= 1 }
            #expect(during[0].headers["webhook-signature"]?.split(separator: " ").count == 2)
            #expect(try await verifyWebhooks(during, secrets: [new, old, WebhookSignature.text(Array(repeating: 1, count: 32))]) == [[true, true, false]])
            // A day later the old secret no longer signs.
            try await app.database.execute("UPDATE webhook_subscriptions SET previous_secret_until = now() - interval '1 second'")
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "after", "role": "requester"]).status == .created)
            let after = try await receiver.wait { $0.count >= 2 }
            #expect(after[1].headers["webhook-signature"]?.split(separator: " ").count == 1)
            #expect(try await verifyWebhooks([after[1]], secrets: [new, old]) == [[true, false]])
        }
    }

    @Test func changesThatDidNotCommitAreNeverSent() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("ada")
            let rita = try await client.token("rita")
            let (hook, _) = try await subscribe(client, token: admin, url: receiver.url(), events: ["*"])
            let start = Date().addingTimeInterval(86_400 * 20).rounded()
            let one = try await submitBooking(client, token: rita, bookingBody(start: start))
            let two = try await submitBooking(client, token: rita, bookingBody(start: start))
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": one]).status == .ok)
            // Refused: overlaps, and not pending. Neither is reported.
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": two]).status == .conflict)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": one]).status == .conflict)
            #expect(try await client.send(.post, "/booking", token: rita, json: ["topic": ""]).status == .unprocessableContent)
            // A change rolled back inside PostgreSQL, after its event row was written.
            do {
                try await app.database.withClient { postgres in
                    try await postgres.withTransaction(logger: TestEnvironment.logger) { connection in
                        _ = try await connection.query("INSERT INTO webhook_events (type, data) VALUES ('user.created', '{\"rolled\":\"back\"}')", logger: TestEnvironment.logger)
                        throw RolledBack()
                    }
                }
            } catch let error as PostgresTransactionError where error.closureError is RolledBack {}
            // A ping queued after all of that arrives last; by then nothing else may have come.
            #expect(try await client.send(.post, "/webhooks/\(hook)/ping", token: admin).status == .accepted)
            let got = try await receiver.wait { items in items.contains { $0.type == "webhook.ping" } }
            try await Task.sleep(for: .milliseconds(500))
            #expect(receiver.all.map(\.type).sorted() == ["booking.accepted", "booking.submitted", "booking.submitted", "webhook.ping"], "\(got.map(\.type))")
            #expect(!receiver.all.contains { String(decoding: $0.body, as: UTF8.self).contains("rolled") })
        }
    }

    @Test func pingRetryAndTheDeliveryLog() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, _) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            let ping = try await client.send(.post, "/webhooks/\(hook)/ping", token: admin)
            #expect(ping.status == .accepted)
            #expect(ping.json["type"] as? String == "webhook.ping")
            let got = try await receiver.wait { $0.count >= 1 }
            let data = try #require(got[0].json["data"] as? [String: Any])
            #expect(data["id"] as? Int == hook, "a ping carries its subscription")
            #expect(data["secret"] == nil)
            for name in ["u1", "u2", "u3"] {
                #expect(try await client.send(.post, "/users", token: admin, json: ["username": name, "role": "requester"]).status == .created)
            }
            try await receiver.wait { $0.count >= 4 }
            _ = try await waitForDelivery(client, token: admin, hook: hook) { $0["type"] as? String == "user.created" && $0["state"] as? String == "delivered" }
            // Newest first, two per page, every delivery once.
            var seen: [Int] = []
            var cursor: String?
            repeat {
                let page = try await client.send(.get, "/webhooks/\(hook)/deliveries?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: admin)
                #expect(page.status == .ok)
                seen += (page.json["deliveries"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
                cursor = page.json["next_cursor"] as? String
            } while cursor != nil
            #expect(seen.count == 4)
            #expect(seen == seen.sorted(by: >))
            #expect(try await client.send(.get, "/webhooks/\(hook)/deliveries?state=failed", token: admin).json["deliveries"] as? [Any] != nil)
            #expect(try await client.send(.get, "/webhooks/\(hook)/deliveries?state=lost", token: admin).status == .badRequest)
            #expect(try await client.send(.get, "/webhooks/\(hook)/deliveries?cursor=zzz", token: admin).status == .badRequest)
            #expect(try await client.send(.get, "/webhooks/\(hook)/deliveries?color=red", token: admin).status == .badRequest)
            // A delivered event sent again on request: same id, same body.
            let pingDelivery = try #require(ping.json["id"] as? Int)
            let retried = try await client.send(.post, "/webhooks/\(hook)/deliveries/\(pingDelivery)/retry", token: admin)
            #expect(retried.status == .accepted)
            let again = try await receiver.wait { $0.count >= 5 }
            #expect(again[4].id == got[0].id)
            #expect(again[4].body == got[0].body)
            #expect(try await client.send(.post, "/webhooks/\(hook)/deliveries/999999/retry", token: admin).status == .notFound)
            #expect(try await client.send(.get, "/webhooks/\(hook)/deliveries/999999", token: admin).status == .notFound)
        }
    }

    @Test func redirectsAreNotFollowed() async throws {
        let receiver = try await WebhookReceiver.start(responding: { path, _ in
            path == "hook"
                ? Response(status: .temporaryRedirect, headers: [.location: "/elsewhere"])
                : Response(status: .noContent)
        })
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, _) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "u1", "role": "requester"]).status == .created)
            let delivery = try await waitForDelivery(client, token: admin, hook: hook) { ($0["attempts"] as? Int ?? 0) >= 2 }
            #expect(delivery["state"] as? String == "pending", "a redirect is a failed attempt")
            #expect(delivery["last_status"] as? Int == 307)
            #expect(receiver.all.allSatisfy { $0.path == "hook" }, "the redirect's target got nothing")
        }
    }

    @Test func onlyAFewKilobytesOfAnAnswerAreRead() async throws {
        // An answer that never ends: read whole, the attempt would time out; the dispatcher stops
        // after 16 KiB and takes the 200.
        let receiver = try await WebhookReceiver.start(responding: { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                let chunk = ByteBuffer(repeating: UInt8(ascii: "a"), count: 4096)
                while true {
                    try await writer.write(chunk)
                    try await Task.sleep(for: .milliseconds(5))
                }
            })
        })
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let admin = try await client.token("ada")
            let (hook, _) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "u1", "role": "requester"]).status == .created)
            let delivery = try await waitForDelivery(client, token: admin, hook: hook) { $0["state"] as? String != "pending" || ($0["attempts"] as? Int ?? 0) > 1 }
            #expect(delivery["state"] as? String == "delivered", "\(delivery)")
            #expect(delivery["attempts"] as? Int == 1)
        }
    }

    @Test func oldEventsArePrunedUnlessADeliveryIsPending() async throws {
        let app = try await webhookApp()
        try await app.database.execute("INSERT INTO webhook_subscriptions (url, events, secret, created_by) VALUES ('http://127.0.0.1:9/', ARRAY['*'], '\\x00'::bytea, 't')")
        try await app.database.execute("""
            INSERT INTO webhook_events (id, type, data, created_at) VALUES
                ('evt_old_done', 'user.created', '{}', now() - interval '31 days'),
                ('evt_old_pending', 'user.created', '{}', now() - interval '31 days'),
                ('evt_recent', 'user.created', '{}', now() - interval '29 days')
            """)
        try await app.database.execute("UPDATE webhook_deliveries SET state = 'delivered' WHERE event_id <> 'evt_old_pending'")
        // The pending one must not be sent during the test: its lease is held.
        try await app.database.execute("UPDATE webhook_deliveries SET lease_until = now() + interval '1 hour' WHERE event_id = 'evt_old_pending'")
        let deleted = try await app.database.withDatabase { database in
            try await WebhookDispatcher(
                database: database, listenConfiguration: try app.database.url.connectionConfiguration(connectTimeout: .seconds(2)),
                allowPrivateNetworks: true, logger: TestEnvironment.logger
            ).prune()
        }
        #expect(deleted == 1)
        let left = try await app.database.scalar("SELECT string_agg(id, ',' ORDER BY id) FROM webhook_events", as: String.self)
        #expect(left == "evt_old_pending,evt_recent")
        #expect(try await app.database.scalar("SELECT count(*) FROM webhook_deliveries", as: Int.self) == 2)
    }

    @Test func theAddressIsCheckedAgainWhenSending() async throws {
        // A subscription to loopback stored while private networks were allowed (or a name that
        // resolves elsewhere by now): a server that does not allow them refuses to send.
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp(allowPrivate: false)
        try await app.createUser("ada", role: .admin)
        try await app.database.execute(
            "INSERT INTO webhook_subscriptions (url, events, secret, created_by) VALUES (\("https://localhost:\(receiver.port)/hook"), ARRAY['*'], '\\x00'::bytea, 'test')"
        )
        try await app.test { client in
            let admin = try await client.token("ada")
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "u1", "role": "requester"]).status == .created)
            let delivery = try await waitForDelivery(client, token: admin, hook: 1) { ($0["last_error"] as? String)?.contains("refused") == true }
            #expect((delivery["last_error"] as? String)?.contains("loopback") == true, "\(delivery)")
            #expect(receiver.all.isEmpty)
        }
    }

    @Test func aSlowReceiverDoesNotSlowTheAPI() async throws {
        // The receiver holds every request for 20 s; the API's answers do not wait for it.
        let receiver = try await WebhookReceiver.start { _, _ in
            try? await Task.sleep(for: .seconds(20))
            return .ok
        }
        defer { Task { await receiver.stop() } }
        let app = try await webhookApp()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("ada")
            let rita = try await client.token("rita")
            _ = try await subscribe(client, token: admin, url: receiver.url(), events: ["*"])
            let limit = WebhookDispatcher.inFlightLimit
            for index in 0..<(limit + 8) {
                _ = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: Double(100 + index * 5)))
            }
            // Every submission was answered while the receiver still held its first request (an
            // attempt ends after 10 s at the latest).
            #expect(try await app.database.scalar("SELECT count(*) FROM webhook_attempts", as: Int.self) == 0)
            #expect(try await app.database.scalar("SELECT count(*) FROM bookings", as: Int.self) == limit + 8)
            let arrived = try await receiver.wait { $0.count >= limit }
            #expect(arrived.count <= limit, "at most \(limit) attempts in flight")
        }
    }
}

/// Polls the subscription's newest deliveries until one satisfies `condition`.
func waitForDelivery(
    _ client: some TestClientProtocol, token: String, hook: Int, timeout: Duration = .seconds(30),
    _ condition: ([String: Any]) -> Bool
) async throws -> [String: Any] {
    let deadline = ContinuousClock.now + timeout
    var last = ""
    while ContinuousClock.now < deadline {
        let page = try await client.send(.get, "/webhooks/\(hook)/deliveries", token: token)
        last = page.text
        if let found = (page.json["deliveries"] as? [[String: Any]] ?? []).first(where: condition) { return found }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestSetupError("no delivery as expected; last page: \(last)")
}

/// The raw bytes of a top-level member's value in a JSON object (as sent, not re-encoded).
func jsonBytes(of key: String, in body: [UInt8]) -> [UInt8]? {
    let marker = Array("\"\(key)\":".utf8)
    guard let start = body.indices.first(where: { body[$0...].starts(with: marker) }) else { return nil }
    // `data` is the last member: its value runs to the object's closing brace.
    return Array(body[(start + marker.count)..<(body.count - 1)])
}

private struct RolledBack: Error {}

extension Date {
    func rounded() -> Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded()) }
}

/// Real `booking-server` processes sharing one database and one receiver.
@Suite struct WebhookReplicaTests {
    @Test func twoServersDeliverEveryEventOnceAndShutDownPastAStuckReceiver() async throws {
        let receiver = try await WebhookReceiver.start { path, _ in
            if path == "stuck" { try? await Task.sleep(for: .seconds(60)) }
            return .noContent
        }
        defer { Task { await receiver.stop() } }
        let database = try await TestDatabase.create()
        let key = WebhookSignature.newSecret()
        try await database.execute(
            "INSERT INTO webhook_subscriptions (url, events, secret, created_by) VALUES (\(receiver.url()), ARRAY['*'], \(Data(key.key)), 'test')"
        )
        var servers: [(BackgroundProgram, String)] = []
        for _ in 0..<2 {
            let port = try await freePort()
            let server = try BackgroundProgram.start(
                "booking-server", [],
                environment: ["DATABASE_URL": database.connectionString, "PORT": String(port), "APP_ENV": "test",
                              "MIGRATIONS_DIR": TestEnvironment.migrationsDirectory, "LOG_LEVEL": "warning",
                              "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "SHUTDOWN_GRACE_SECONDS": "3"]
            )
            servers.append((server, "http://127.0.0.1:\(port)"))
        }
        defer { for (server, _) in servers { server.signal(SIGKILL) } }
        for (server, base) in servers {
            var up = false
            for _ in 0..<100 where !up {
                up = try await runProgram("/usr/bin/curl", ["-fs", "\(base)/healthz"]).status == 0
                if !up { try await Task.sleep(for: .milliseconds(100)) }
            }
            try #require(up, "server did not start: \(server.output)")
        }
        // 300 events committed at once: both dispatchers wake and claim from the same queue.
        try await database.execute(
            "INSERT INTO webhook_events (type, data) SELECT 'user.created', '{\"n\":' || g || '}' FROM generate_series(1, 300) g"
        )
        let got = try await receiver.wait(timeout: .seconds(60)) { Set($0.map(\.id)).count >= 300 }
        try await Task.sleep(for: .seconds(1))
        #expect(Set(got.map(\.id)).count == 300, "every event delivered")
        #expect(receiver.all.count == 300, "none sent twice")
        #expect(try await database.scalar("SELECT count(*) FROM webhook_attempts", as: Int.self) == 300)
        #expect(try await database.scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered' AND attempts = 1", as: Int.self) == 300)
        let sample = Array(receiver.all.prefix(5))
        #expect(try await verifyWebhooks(sample, secrets: [key.text]).allSatisfy { $0 == [true] })

        // A receiver that never answers does not hold up shutdown beyond SHUTDOWN_GRACE_SECONDS.
        try await database.execute(
            "INSERT INTO webhook_subscriptions (url, events, secret, created_by) VALUES (\(receiver.url("stuck")), ARRAY['*'], \(Data(key.key)), 'test')"
        )
        try await database.execute("INSERT INTO webhook_events (type, data) SELECT 'user.created', '{}' FROM generate_series(1, 4)")
        try await receiver.wait { $0.filter { $0.path == "stuck" }.count >= 4 }
        let clock = ContinuousClock()
        let start = clock.now
        for (server, _) in servers { server.signal(SIGTERM) }
        for (server, _) in servers {
            let status = await server.wait()
            #expect(status == 0, "\(server.output)")
        }
        let took = clock.now - start
        #expect(took < .seconds(3 + 2), "shutdown took \(took)")
    }
}

@Suite struct WebhookResilienceTests {
    /// PostgreSQL stopped for 6 s and started again: the dispatcher logs, waits (no tight loop of
    /// failures) and delivers what committed afterwards, including over a new LISTEN connection.
    @Test func theDispatcherWaitsOutAStoppedDatabaseAndResumes() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        let cluster = try await PrivateCluster.start()
        defer { Task { await cluster.remove() } }
        let database = TestDatabase(url: try cluster.url)
        try await database.migrate()
        // Polling off: after the restart only a re-opened LISTEN connection can wake it.
        let app = try await TestApp.make(database: database) { configuration in
            configuration.webhookAllowPrivateNetworks = true
            configuration.webhookRetryBase = .milliseconds(200)
            configuration.webhookPollInterval = .seconds(3600)
            configuration.databaseTimeout = .seconds(2)
        }
        try await app.createUser("ada", role: .admin)
        let capture = LogCapture()
        let logger = Logger(label: "booking-api") { capture.handler(label: $0) }
        let built = try await buildApplication(app.configuration, logger: logger)
        let secrets = Mutex<[String]>([])
        try await built.test(.router) { client in
            let admin = try await client.token("ada")
            let (hook, secret) = try await subscribe(client, token: admin, url: receiver.url(), events: ["user.created"])
            let rotated = try await client.send(.post, "/webhooks/\(hook)/secret", token: admin).json["secret"] as? String
            secrets.withLock { $0 = [secret, rotated ?? secret] }
            #expect(try await client.send(.post, "/users", token: admin, json: ["username": "before", "role": "requester"]).status == .created)
            try await receiver.wait { $0.count >= 1 }

            try await cluster.run("stop")
            try await Task.sleep(for: .seconds(6))
            try await cluster.run("start")
            var created = false
            for _ in 0..<50 where !created {
                let answer = try await client.send(.post, "/users", token: admin, json: ["username": "after", "role": "requester"])
                created = answer.status == .created
                if !created { try await Task.sleep(for: .milliseconds(200)) }
            }
            try #require(created)
            let got = try await receiver.wait { $0.count >= 2 }
            #expect(got.compactMap { ($0.json["data"] as? [String: Any])?["username"] as? String } == ["before", "after"])
        }
        let failures = capture.text.split(separator: "\n").filter { $0.contains("webhooks:") }
        #expect(failures.count < 30, "the dispatcher retried in a tight loop: \(failures.count) lines")
        #expect(!capture.text.contains(cluster.password))
        // Every line at trace level (async-http-client's included): no signing secret in any.
        for secret in secrets.withLock({ $0 }) {
            #expect(!capture.text.contains(String(secret.dropFirst(6))))
        }
        #expect(capture.text.contains("webhook") || capture.text.contains("ahc"), "the capture saw the dispatcher's lines")
    }
}
