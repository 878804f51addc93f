import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import BookingAPI

/// One row of `webhook_events`.
struct StoredEvent: Equatable {
    let type: String
    let data: String
}

extension TestDatabase {
    func events() async throws -> [StoredEvent] {
        try await withDatabase { database in
            try await database.withConnection(logger: TestEnvironment.logger) { connection in
                var events: [StoredEvent] = []
                let rows = try await connection.collect("SELECT type, data FROM webhook_events ORDER BY created_at, id", logger: TestEnvironment.logger)
                for try await (type, data) in rows.decode((String, String).self) { events.append(StoredEvent(type: type, data: data)) }
                return events
            }
        }
    }
}

func jsonObject(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
}

/// The transactional outbox (API.md, "Webhooks"): every change writes its event in its own
/// transaction, with the booking or user exactly as the API answered it; nothing else does.
@Suite struct OutboxTests {
    @Test func everyBookingChangeWritesItsEventWithTheBookingAsAnswered() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita")
            let baseline = try await app.database.events().count
            let submitted = try await client.send(.post, "/booking", token: rita, json: bookingBody(topic: "one", hoursFromNow: 24 * 20))
            let id = try #require(submitted.json["id"] as? Int)
            let accepted = try await client.send(.post, "/booking/accept", token: ada, json: ["id": id, "note": "ok"])
            let cancelled = try await client.send(.post, "/booking/\(id)/cancel", token: rita, json: ["note": "sorry"])
            let other = try await submitBooking(client, token: rita, bookingBody(topic: "two", hoursFromNow: 24 * 21))
            let rejected = try await client.send(.post, "/booking/reject", token: ada, json: ["id": other])
            let deleted = try await client.send(.delete, "/booking/\(other)", token: ada)
            let events = Array(try await app.database.events().dropFirst(baseline))
            try #require(events.map(\.type) == [
                "booking.submitted", "booking.accepted", "booking.cancelled", "booking.submitted", "booking.rejected", "booking.deleted",
            ])
            // The bytes of the API's answer, byte for byte.
            let answers = [submitted.text, accepted.text, cancelled.text, nil, rejected.text, deleted.text]
            for (event, answer) in zip(events, answers) {
                if let answer { #expect(event.data == answer, "\(event.type)") }
            }
        }
    }

    @Test func refusedAndRolledBackChangesWriteNothing() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let first = try await submitBooking(client, token: ada, bookingBody(topic: "first", hoursFromNow: 24 * 30, duration: 120))
            let second = try await submitBooking(client, token: ada, bookingBody(topic: "second", hoursFromNow: 24 * 30 + 1, duration: 120))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": first]).status == .ok)
            let before = try await app.database.events()
            // The overlap is refused by the exclusion constraint inside the transaction that
            // would have written the event: it rolls back with it.
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": second]).status == .conflict)
            // Refused before any write: not pending, not found, invalid.
            #expect(try await client.send(.post, "/booking/reject", token: ada, json: ["id": first]).status == .conflict)
            #expect(try await client.send(.post, "/booking/\(first + 1000)/cancel", token: ada).status == .notFound)
            #expect(try await client.send(.post, "/booking", token: ada, json: ["topic": ""]).status == .unprocessableContent)
            // An atomic import with one bad row creates nobody, so announces nobody.
            let importAnswer = try await client.send(.post, "/users/import", token: ada, json: [
                "users": [["username": "new1", "role": "requester"], ["username": "ada", "role": "requester"]], "atomic": true,
            ])
            #expect(importAnswer.status == .unprocessableContent, "\(importAnswer.text)")
            #expect(try await app.database.events() == before)
        }
    }

    @Test func userChangesFromTheAPIAndFromManagePasswordsAreAnnounced() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let baseline = try await app.database.events().count
            let created = try await client.send(.post, "/users", token: ada, json: ["username": "rita", "role": "requester"])
            #expect(created.status == .created)
            let id = try #require(created.json["id"] as? Int)
            let patched = try await client.send(.patch, "/users/\(id)", token: ada, json: ["role": "admin"])
            #expect(patched.status == .ok)
            // A PATCH that changes nothing is no update.
            #expect(try await client.send(.patch, "/users/\(id)", token: ada, json: ["role": "admin"]).status == .ok)
            let imported = try await client.send(.post, "/users/import", token: ada, json: ["users": [["username": "sam", "role": "requester"]], "atomic": true])
            #expect(imported.status == .ok)

            let cli = try await runProgram(
                "manage-passwords", ["set", "lena", "--role", "requester", "--password-stdin"],
                environment: ["DATABASE_URL": app.database.connectionString], input: "a long enough password\n"
            )
            #expect(cli.status == 0, "\(cli.output)")
            let disabled = try await runProgram("manage-passwords", ["disable", "lena"], environment: ["DATABASE_URL": app.database.connectionString])
            #expect(disabled.status == 0, "\(disabled.output)")

            let events = Array(try await app.database.events().dropFirst(baseline))
            try #require(events.map(\.type) == ["user.created", "user.updated", "user.created", "user.created", "user.updated"], "\(events.map(\.type))")
            var expectedCreated = created.json
            expectedCreated.removeValue(forKey: "password")
            #expect(NSDictionary(dictionary: jsonObject(events[0].data)) == NSDictionary(dictionary: expectedCreated))
            #expect(events[1].data == patched.text)
            #expect(jsonObject(events[2].data)["username"] as? String == "sam")
            #expect(jsonObject(events[3].data)["username"] as? String == "lena")
            #expect(jsonObject(events[4].data)["disabled"] as? Bool == true)
            // Never a hash or a password in an event.
            for event in events { #expect(!event.data.contains("argon2") && !event.data.contains("password\"")) }
        }
    }

    /// Expiry is reported once, by whichever sweeper gets there first, never for a booking that
    /// was decided in time.
    @Test func expiryIsReportedOnceAcrossConcurrentSweepers() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            var stale: [Int] = []
            for index in 0..<30 {
                let id = try await submitBooking(client, token: ada, bookingBody(topic: "stale \(index)", hoursFromNow: Double(24 * 5 + index)))
                try await startEvent(app.database, id: id, minutesAgo: 10 + index)
                stale.append(id)
            }
            let decided = try await submitBooking(client, token: ada, bookingBody(topic: "decided", hoursFromNow: 24 * 9))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": decided]).status == .ok)
            try await startEvent(app.database, id: decided)
            let live = try await submitBooking(client, token: ada, bookingBody(topic: "live", hoursFromNow: 24 * 10))
            // The app's own sweeper runs too (every 5 s), so the four here may find some
            // already reported: what matters is that each expiry is reported once in all.
            let counts = try await app.database.withDatabase { database in
                let sweeper = ExpirySweeper(database: database, logger: TestEnvironment.logger)
                return try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<4 { group.addTask { try await sweeper.sweep() } }
                    return try await group.reduce(0, +)
                }
            }
            #expect(counts <= 30)
            let again = try await app.database.withDatabase { database in try await ExpirySweeper(database: database, logger: TestEnvironment.logger).sweep() }
            #expect(again == 0)

            let events = try await app.database.events().filter { $0.type == "booking.expired" }
            let ids = events.compactMap { jsonObject($0.data)["id"] as? Int }
            #expect(ids.count == 30 && Set(ids) == Set(stale), "\(ids.sorted())")
            #expect(events.allSatisfy { jsonObject($0.data)["status"] as? String == "expired" })
            #expect(!ids.contains(live) && !ids.contains(decided))
            let audit = try await client.send(.get, "/audit?action=booking.expired&limit=100", token: ada)
            #expect((audit.json["events"] as? [[String: Any]])?.count == 30)
            #expect((audit.json["events"] as? [[String: Any]])?.first?["actor"] as? String == "system")
        }
    }

    /// Dispatchers are woken at commit, not before and not for a rollback.
    @Test func eventsNotifyListenersAtCommit() async throws {
        let database = try await TestDatabase.create()
        try await database.withClient { client in
            try await client.withConnection { listener in
                let notifications = try await listener.listen("webhook_events")
                var iterator = notifications.makeAsyncIterator()
                try await client.withConnection { writer in
                    _ = try await writer.collect("BEGIN", logger: TestEnvironment.logger)
                    _ = try await writer.collect("INSERT INTO webhook_events (type, data) VALUES ('webhook.ping', '{}')", logger: TestEnvironment.logger)
                    _ = try await writer.collect("ROLLBACK", logger: TestEnvironment.logger)
                    _ = try await writer.collect("INSERT INTO webhook_events (type, data) VALUES ('webhook.ping', '{\"n\":2}') ", logger: TestEnvironment.logger)
                }
                let first = try await iterator.next()
                let stored = try await database.scalar("SELECT id FROM webhook_events", as: String.self)
                // The rolled-back insert never notified: the first notice is the committed row.
                #expect(first?.payload == stored)
                #expect(stored?.hasPrefix("evt_") == true)
            }
        }
    }
}
