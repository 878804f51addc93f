import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import BookingAPI

extension TestClientProtocol {
    func submit(_ body: [String: Any] = bookingBody(), token: String, headers: HTTPFields = [:]) async throws -> TestResponseBody {
        try await send(.post, "/booking", token: token, json: body, headers: headers)
    }

    func submitID(_ body: [String: Any] = bookingBody(), token: String) async throws -> Int {
        let response = try await submit(body, token: token)
        guard response.status == .created, let id = response.json["id"] as? Int else {
            throw TestSetupError("submit failed: \(response.status) \(response.text)")
        }
        return id
    }
}

/// A test app with an admin and two requesters, logged in.
struct BookingFixture {
    let app: TestApp

    static func make() async throws -> BookingFixture {
        let app = try await TestApp.make()
        try await app.createUser("admin", role: .admin)
        try await app.createUser("alice", role: .requester)
        try await app.createUser("bob", role: .requester)
        return BookingFixture(app: app)
    }

    func run(_ body: @escaping @Sendable (any TestClientProtocol, _ admin: String, _ alice: String, _ bob: String) async throws -> Void) async throws {
        try await app.test { client in
            try await body(client, try await client.token("admin"), try await client.token("alice"), try await client.token("bob"))
        }
    }
}

@Suite struct BookingSubmitTests {
    @Test func submitReturnsTheStoredBookingWithItsLocation() async throws {
        try await BookingFixture.make().run { client, _, alice, _ in
            let response = try await client.submit(bookingBody(topic: "  Launch  ", country: "usa"), token: alice)
            #expect(response.status == .created)
            let id = try #require(response.json["id"] as? Int)
            #expect(response.headers[.location] == "/booking/\(id)")
            #expect(response.json["topic"] as? String == "Launch")
            #expect(response.json["status"] as? String == "pending")
            #expect(response.json["submitted_by"] as? String == "alice")
            #expect((response.json["address"] as? [String: Any])?["country"] as? String == "US")
            #expect((response.json["event_time"] as? String)?.hasSuffix("Z") == true)
            #expect(response.json.keys.contains("decided_by"))
            let fetched = try await client.send(.get, "/booking/\(id)", token: alice)
            #expect(fetched.status == .ok)
            #expect(fetched.json["id"] as? Int == id)
        }
    }

    @Test func invalidBodiesAreRefusedAndNothingIsStored() async throws {
        let fixture = try await BookingFixture.make()
        try await fixture.run { client, _, alice, _ in
            var body = bookingBody(duration: 0, country: "Atlantis")
            body["colour"] = "red"
            let invalid = try await client.submit(body, token: alice)
            #expect(invalid.status == .unprocessableContent)
            #expect(invalid.headers[.contentType] == "application/problem+json")
            let errors = try #require(invalid.json["errors"] as? [[String: String]])
            #expect(Set(errors.compactMap { $0["field"] }) == ["duration_minutes", "address.country", "colour"])
            #expect(errors.contains { $0["message"] == "unknown country 'Atlantis'" })
            #expect(invalid.json["detail"] as? String == "3 fields are invalid")

            let notJSON = try await client.send(.post, "/booking", token: alice, body: "{\"topic\":", contentType: "application/json")
            #expect(notJSON.status == .badRequest)
            let wrongType = try await client.send(.post, "/booking", token: alice, body: "topic=x", contentType: "application/x-www-form-urlencoded")
            #expect(wrongType.status == .badRequest)
            let array = try await client.send(.post, "/booking", token: alice, body: "[]", contentType: "application/json")
            #expect(array.status == .badRequest)
            var huge = bookingBody()
            huge["topic"] = String(repeating: "x", count: 70 * 1024)
            let tooLarge = try await client.submit(huge, token: alice)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.headers[.contentType] == "application/problem+json")
        }
        #expect(try await fixture.app.database.scalar("SELECT count(*)::int FROM bookings", as: Int.self) == 0)
    }

    @Test func idempotentRetriesCreateOneBooking() async throws {
        let fixture = try await BookingFixture.make()
        try await fixture.run { client, _, alice, bob in
            let body = bookingBody(topic: "Retry me")
            let key: HTTPFields = [.init("Idempotency-Key")!: "key-123"]
            let first = try await client.submit(body, token: alice, headers: key)
            #expect(first.status == .created)
            let second = try await client.submit(body, token: alice, headers: key)
            #expect(second.status == .ok)
            #expect(second.json["id"] as? Int == first.json["id"] as? Int)
            var other = body
            other["topic"] = "Something else"
            let conflict = try await client.submit(other, token: alice, headers: key)
            #expect(conflict.status == .conflict)
            // Keys belong to a user: bob's same key is a new request.
            let bobs = try await client.submit(body, token: bob, headers: key)
            #expect(bobs.status == .created)
            // Concurrent retries with one key still create one booking.
            let concurrentKey: HTTPFields = [.init("Idempotency-Key")!: "parallel"]
            let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await client.send(.post, "/booking", token: alice, body: text, contentType: "application/json", headers: concurrentKey).status.code
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 201 }.count == 1)
            #expect(statuses.filter { $0 == 200 }.count == 7)
            let tooLong: HTTPFields = [.init("Idempotency-Key")!: String(repeating: "k", count: 256)]
            #expect(try await client.submit(body, token: alice, headers: tooLong).status == .badRequest)
        }
        #expect(try await fixture.app.database.scalar("SELECT count(*)::int FROM bookings", as: Int.self) == 3)
    }
}

@Suite struct BookingReadTests {
    @Test func requestersSeeOnlyTheirOwnBookings() async throws {
        try await BookingFixture.make().run { client, admin, alice, bob in
            let alices = try await client.submitID(token: alice)
            let bobs = try await client.submitID(token: bob)
            let missing = try await client.send(.get, "/booking/\(bobs)", token: alice)
            #expect(missing.status == .notFound)
            let nonexistent = try await client.send(.get, "/booking/999999", token: alice)
            #expect(nonexistent.data == missing.data.replacing(Data("\(bobs)".utf8), with: Data("999999".utf8)))
            #expect(try await client.send(.get, "/booking/\(bobs)", token: admin).status == .ok)
            #expect(try await client.send(.get, "/booking/abc", token: admin).status == .notFound)

            let aliceList = try await client.send(.get, "/booking", token: alice)
            let aliceIDs = (aliceList.json["bookings"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }
            #expect(aliceIDs == [alices])
            let adminList = try await client.send(.get, "/booking/", token: admin)
            let adminIDs = (adminList.json["bookings"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }
            #expect(adminIDs == [bobs, alices])
            #expect(adminList.json.keys.contains("next_cursor"))
        }
    }

    @Test func filtersAndQueryErrors() async throws {
        try await BookingFixture.make().run { client, admin, alice, _ in
            let soon = try await client.submitID(bookingBody(hoursFromNow: 10), token: alice)
            let later = try await client.submitID(bookingBody(hoursFromNow: 100), token: alice)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": later]).status == .ok)

            func ids(_ query: String) async throws -> [Int] {
                let response = try await client.send(.get, "/booking?\(query)", token: admin)
                #expect(response.status == .ok, "\(query)")
                return (response.json["bookings"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
            }
            #expect(try await ids("status=accepted") == [later])
            #expect(try await ids("status=pending") == [soon])
            let middle = ISO8601DateFormatter().string(from: Date().addingTimeInterval(50 * 3600))
            #expect(try await ids("from=\(middle)") == [later])
            #expect(try await ids("to=\(middle)") == [soon])
            for bad in ["status=done", "limit=0", "limit=201", "limit=x", "from=yesterday", "cursor=bogus", "sort=id", "order=id", "order="] {
                let response = try await client.send(.get, "/booking?\(bad)", token: admin)
                #expect(response.status == .badRequest, "\(bad)")
            }
        }
    }

    @Test func cursorPagesNeverSkipOrRepeatWhileInsertsHappen() async throws {
        let fixture = try await BookingFixture.make()
        // 300 bookings straight into the table, with created_at ties to exercise the id order.
        try await fixture.app.database.execute("""
            INSERT INTO bookings (topic, event_time, duration_minutes, street, city, country, requested_by, submitted_by, submitter_id, created_at)
            SELECT 'Seed ' || n, now() + interval '30 days' + n * interval '1 hour', 30, '1 Main', 'Town', 'US', 'x@example.com', 'alice',
                   (SELECT id FROM users WHERE username = 'alice'), now() - (n / 3) * interval '1 second'
            FROM generate_series(1, 300) AS n
            """)
        let expected = try await fixture.app.database.scalar("SELECT array_agg(id ORDER BY created_at DESC, id DESC)::bigint[] FROM bookings", as: [Int64].self) ?? []
        try await fixture.run { client, admin, alice, _ in
            var seen: [Int] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = "/booking?limit=50" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await client.send(.get, query, token: admin)
                #expect(page.status == .ok)
                seen += (page.json["bookings"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
                cursor = page.json["next_cursor"] as? String
                pages += 1
                // New bookings arrive between pages; they are newer than the cursor.
                _ = try await client.submitID(token: alice)
            } while cursor != nil && pages < 20
            #expect(seen.count == Set(seen).count, "a booking was repeated")
            #expect(seen == expected.map { Int($0) }, "pages skipped or reordered bookings")
            #expect(pages == 6)
        }
    }

    /// `order=event_time`: the queue, earliest event first, ties by id, paged without skips or
    /// repeats while bookings arrive; a cursor is refused by a list in the other order.
    @Test func theQueueOrderPagesByEventTime() async throws {
        let fixture = try await BookingFixture.make()
        // 120 bookings, three to each event time (ties broken by id), in a shuffled order of ids.
        try await fixture.app.database.execute("""
            INSERT INTO bookings (topic, event_time, duration_minutes, street, city, country, requested_by, submitted_by, submitter_id)
            SELECT 'Seed ' || n, date_trunc('second', now()) + interval '30 days' + ((n * 37) % 40) * interval '1 hour', 30, '1 Main', 'Town', 'US',
                   'x@example.com', 'alice', (SELECT id FROM users WHERE username = 'alice')
            FROM generate_series(1, 120) AS n
            """)
        let expected = try await fixture.app.database.scalar(
            "SELECT array_agg(id ORDER BY event_time, id)::bigint[] FROM bookings WHERE status = 'pending'", as: [Int64].self
        ) ?? []
        try await fixture.run { client, admin, alice, _ in
            var seen: [Int] = []
            var cursor: String?
            var pages = 0
            var createdCursor: String?
            repeat {
                let page = try await client.send(.get, "/booking?status=pending&order=event_time&limit=25" + (cursor.map { "&cursor=\($0)" } ?? ""), token: admin)
                #expect(page.status == .ok)
                seen += (page.json["bookings"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } ?? []
                cursor = page.json["next_cursor"] as? String
                pages += 1
                // Arrivals between pages are later than every seeded event (a year ahead).
                _ = try await client.submitID(bookingBody(hoursFromNow: 24 * 365), token: alice)
            } while cursor != nil && seen.count < 120 && pages < 10
            #expect(Array(seen.prefix(120)) == expected.map { Int($0) }, "pages skipped or reordered bookings")
            #expect(seen.count == Set(seen).count, "a booking was repeated")
            #expect(pages == 5)

            let first = try await client.send(.get, "/booking?limit=5", token: admin)
            createdCursor = first.json["next_cursor"] as? String
            let crossed = try await client.send(.get, "/booking?order=event_time&cursor=\(try #require(createdCursor))", token: admin)
            #expect(crossed.status == .badRequest)
            let explicit = try await client.send(.get, "/booking?order=created_at&limit=5&cursor=\(try #require(createdCursor))", token: admin)
            #expect(explicit.status == .ok)
        }
    }

    @Test func listQueriesUseTheIndexes() async throws {
        let fixture = try await BookingFixture.make()
        try await fixture.app.database.execute("""
            INSERT INTO bookings (topic, event_time, duration_minutes, street, city, country, requested_by, submitted_by, submitter_id)
            SELECT 'Seed', now() + interval '30 days' + n * interval '1 hour', 30, '1 Main', 'Town', 'US', 'x@example.com', 'alice', n % 50
            FROM generate_series(1, 5000) AS n
            """)
        try await fixture.app.database.execute("ANALYZE bookings")
        let plans = [
            "EXPLAIN SELECT id FROM bookings ORDER BY created_at DESC, id DESC LIMIT 51",
            "EXPLAIN SELECT id FROM bookings WHERE submitter_id = 7 ORDER BY created_at DESC, id DESC LIMIT 51",
            "EXPLAIN SELECT id FROM bookings WHERE status = 'accepted' ORDER BY created_at DESC, id DESC LIMIT 51",
            "EXPLAIN SELECT id FROM bookings WHERE status = 'pending' ORDER BY event_time, id LIMIT 51",
        ]
        for sql in plans {
            let plan = try await fixture.app.database.withClient { client in
                var lines: [String] = []
                for try await line in try await client.query(.init(unsafeSQL: sql), logger: TestEnvironment.logger).decode(String.self) { lines.append(line) }
                return lines.joined(separator: "\n")
            }
            // For a few matching rows the planner may bitmap-scan and sort; never a full scan.
            #expect(plan.contains("Index"), "\(sql)\n\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(sql)\n\(plan)")
        }
        // The service's own list statements are prepared once per connection, so PostgreSQL may
        // settle on a generic plan (one made without the values): that plan must use an index too.
        let cursor = BookingCursor(order: .created, at: Date().addingTimeInterval(86_400 * 400), id: 1_000_000)
        let queue = BookingCursor(order: .eventTime, at: Date(), id: 1)
        let statements: [(BookingFilter, String)] = [
            (BookingFilter(), "51"),
            (BookingFilter(submitterID: 7), "7, 51"),
            (BookingFilter(submitterID: 7, after: cursor), "7, \(cursor.microseconds), \(cursor.id), 51"),
            (BookingFilter(status: .accepted), "'accepted', 51"),
            (BookingFilter(status: .pending, order: .eventTime), "'pending', false, 51"),
            (BookingFilter(status: .pending, order: .eventTime, after: queue), "'pending', false, \(queue.microseconds), \(queue.id), 51"),
            (BookingFilter(after: cursor), "\(cursor.microseconds), \(cursor.id), 51"),
        ]
        for (filter, arguments) in statements {
            let statement = PostgresBookingStore.listStatement(filter)
            #expect(statement.binds.count == arguments.split(separator: ",").count, "\(statement.sql)")
            let plan = try await fixture.app.database.withClient { client in
                try await client.withConnection { connection in
                    _ = try await connection.collect("SET plan_cache_mode = force_generic_plan", logger: TestEnvironment.logger)
                    _ = try await connection.collect(PostgresQuery(unsafeSQL: "PREPARE shape AS " + statement.sql), logger: TestEnvironment.logger)
                    var lines: [String] = []
                    let explained = try await connection.collect(PostgresQuery(unsafeSQL: "EXPLAIN EXECUTE shape(\(arguments))"), logger: TestEnvironment.logger)
                    for try await line in explained.decode(String.self) { lines.append(line) }
                    return lines.joined(separator: "\n")
                }
            }
            #expect(plan.contains("Index"), "\(statement.sql)\n\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(statement.sql)\n\(plan)")
        }
    }
}

@Suite struct BookingDecisionTests {
    @Test func acceptRejectAndTheStateMachine() async throws {
        try await BookingFixture.make().run { client, admin, alice, _ in
            let id = try await client.submitID(token: alice)
            let accepted = try await client.send(.post, "/booking/accept/", token: admin, json: ["id": id, "note": "see you there"])
            #expect(accepted.status == .ok)
            #expect(accepted.json["status"] as? String == "accepted")
            #expect(accepted.json["decided_by"] as? String == "admin")
            #expect(accepted.json["decision_note"] as? String == "see you there")
            #expect(accepted.json["decided_at"] is String)
            let again = try await client.send(.post, "/booking/reject", token: admin, json: ["id": id])
            #expect(again.status == .conflict)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": 987654]).status == .notFound)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": "x"]).status == .unprocessableContent)

            let other = try await client.submitID(bookingBody(hoursFromNow: 500), token: alice)
            let rejected = try await client.send(.post, "/booking/reject", token: admin, json: ["id": other])
            #expect(rejected.json["status"] as? String == "rejected")
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": other]).status == .conflict)
        }
    }

    @Test func concurrentAcceptAndRejectExactlyOneWins() async throws {
        try await BookingFixture.make().run { client, admin, alice, _ in
            for round in 0..<20 {
                let id = try await client.submitID(bookingBody(hoursFromNow: Double(100 + round * 5)), token: alice)
                async let accept = client.send(.post, "/booking/accept", token: admin, json: ["id": id])
                async let reject = client.send(.post, "/booking/reject", token: admin, json: ["id": id])
                let statuses = try await [accept.status, reject.status]
                #expect(statuses.filter { $0 == .ok }.count == 1, "round \(round): \(statuses)")
                #expect(statuses.filter { $0 == .conflict }.count == 1, "round \(round): \(statuses)")
            }
        }
    }

    @Test func overlappingAcceptsCannotBothSucceed() async throws {
        let fixture = try await BookingFixture.make()
        try await fixture.run { client, admin, alice, _ in
            // 20 bookings that all overlap the same hour.
            var ids: [Int] = []
            for index in 0..<20 {
                ids.append(try await client.submitID(bookingBody(hoursFromNow: 200 + Double(index) / 60, duration: 90), token: alice))
            }
            let results = try await withThrowingTaskGroup(of: (Int, TestResponseBody).self) { group in
                for id in ids { group.addTask { (id, try await client.send(.post, "/booking/accept", token: admin, json: ["id": id])) } }
                return try await group.reduce(into: [(Int, TestResponseBody)]()) { $0.append($1) }
            }
            let winners = results.filter { $0.1.status == .ok }.map(\.0)
            #expect(winners.count == 1)
            for (_, response) in results where response.status != .ok {
                #expect(response.status == .conflict)
                #expect(response.json["conflicting_id"] as? Int == winners.first)
            }
            // Back-to-back is not an overlap: [start, end) ranges.
            let adjacent = try await client.submitID(bookingBody(hoursFromNow: 600, duration: 60), token: alice)
            let next = try await client.submitID(bookingBody(hoursFromNow: 601, duration: 60), token: alice)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": adjacent]).status == .ok)
            #expect(try await client.send(.post, "/booking/accept", token: admin, json: ["id": next]).status == .ok)
        }
        #expect(try await fixture.app.database.scalar("SELECT count(*)::int FROM bookings WHERE status = 'accepted'", as: Int.self) == 3)
    }

    @Test func deleteKeepsTheHistory() async throws {
        let fixture = try await BookingFixture.make()
        try await fixture.run { client, admin, alice, _ in
            let id = try await client.submitID(token: alice)
            #expect(try await client.send(.post, "/booking/reject", token: admin, json: ["id": id, "note": "full"]).status == .ok)
            let deleted = try await client.send(.delete, "/booking/\(id)/", token: admin)
            #expect(deleted.status == .ok)
            #expect(deleted.json["id"] as? Int == id)
            #expect(try await client.send(.get, "/booking/\(id)", token: admin).status == .notFound)
            #expect(try await client.send(.delete, "/booking/\(id)", token: admin).status == .notFound)
            let history = try await client.send(.get, "/booking/\(id)/history", token: admin)
            #expect(history.status == .ok)
            let events = try #require(history.json["history"] as? [[String: Any]])
            #expect(events.compactMap { $0["action"] as? String } == ["submit", "reject", "delete"])
            #expect(events.compactMap { $0["actor"] as? String } == ["alice", "admin", "admin"])
            #expect(events[1]["note"] as? String == "full")
            #expect(try await client.send(.get, "/booking/424242/history", token: admin).status == .notFound)
        }
        // The audit table refuses changes, even from the application's own role.
        await #expect(throws: (any Error).self) {
            try await fixture.app.database.execute("DELETE FROM booking_events")
        }
    }
}
