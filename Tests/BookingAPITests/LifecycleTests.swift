import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import BookingAPI

/// Submits a booking and returns its id.
func submitBooking(_ client: some TestClientProtocol, token: String, _ body: [String: Any] = bookingBody()) async throws -> Int {
    let response = try await client.send(.post, "/booking", token: token, json: body)
    guard response.status == .created, let id = response.json["id"] as? Int else {
        throw TestSetupError("submit failed: \(response.status) \(response.text)")
    }
    return id
}

/// A booking body for an event at exactly `start` (whole seconds, UTC).
func bookingBody(topic: String = "Meeting", start: Date, duration: Int = 60) -> [String: Any] {
    var body = bookingBody(topic: topic, duration: duration)
    body["event_time"] = ISO8601DateFormatter().string(from: start)
    return body
}

/// Moves a booking's event into the past, as time would: the rules read the clock, not a flag.
func startEvent(_ database: TestDatabase, id: Int, minutesAgo: Int = 60) async throws {
    try await database.execute("UPDATE bookings SET event_time = now() - make_interval(mins => \(minutesAgo)::int) WHERE id = \(id)")
}

func historyActions(_ client: some TestClientProtocol, token: String, id: Int) async throws -> [String] {
    let history = try await client.send(.get, "/booking/\(id)/history", token: token)
    return (history.json["history"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
}

/// `cancelled` and `expired`, and which moves each status allows (API.md, "Bookings").
@Suite struct BookingLifecycleTests {
    @Test func requestersCancelTheirOwnPendingBookingsWithANote() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.createUser("ron", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita"), ron = try await client.token("ron")
            let id = try await submitBooking(client, token: rita)
            // Someone else's booking does not exist for a requester.
            #expect(try await client.send(.post, "/booking/\(id)/cancel", token: ron).status == .notFound)
            #expect(try await client.send(.post, "/booking/999999/cancel", token: rita).status == .notFound)
            // Bad bodies are refused and change nothing.
            let unknown = try await client.send(.post, "/booking/\(id)/cancel", token: rita, json: ["reason": "x"])
            #expect(unknown.status == .unprocessableContent)
            let long = try await client.send(.post, "/booking/\(id)/cancel", token: rita, json: ["note": String(repeating: "n", count: 2001)])
            #expect(long.status == .unprocessableContent)
            #expect((long.json["errors"] as? [[String: Any]])?.first?["field"] as? String == "note")
            let notJSON = try await client.send(.post, "/booking/\(id)/cancel", token: rita, body: "note", contentType: "text/plain")
            #expect(notJSON.status == .badRequest)
            #expect(try await client.send(.get, "/booking/\(id)", token: rita).json["status"] as? String == "pending")

            let cancelled = try await client.send(.post, "/booking/\(id)/cancel", token: rita, json: ["note": "plans changed"])
            #expect(cancelled.status == .ok, "\(cancelled.text)")
            #expect(cancelled.json["status"] as? String == "cancelled")
            #expect(cancelled.json["decided_by"] as? String == "rita")
            #expect(cancelled.json["decision_note"] as? String == "plans changed")
            #expect(cancelled.json["decided_at"] as? String != nil)

            // Nothing moves a cancelled booking.
            let again = try await client.send(.post, "/booking/\(id)/cancel", token: rita)
            #expect(again.status == .conflict)
            #expect(again.json["current_status"] as? String == "cancelled")
            for decision in ["accept", "reject"] {
                let refused = try await client.send(.post, "/booking/\(decision)", token: ada, json: ["id": id])
                #expect(refused.status == .conflict, "\(decision)")
                #expect(refused.json["current_status"] as? String == "cancelled")
            }
            let events = try await client.send(.get, "/booking/\(id)/history", token: ada).json["history"] as? [[String: Any]] ?? []
            #expect(events.map { $0["action"] as? String } == ["submit", "cancel"])
            #expect(events.last?["actor"] as? String == "rita")
            #expect(events.last?["note"] as? String == "plans changed")
            let audit = try await client.send(.get, "/audit?action=booking.cancelled", token: ada)
            #expect((audit.json["events"] as? [[String: Any]])?.first?["target_id"] as? Int == id, "\(audit.text)")

            // An empty body is fine, with or without a content type; so is an empty object.
            let second = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: 24 * 31))
            #expect(try await client.send(.post, "/booking/\(second)/cancel", token: rita, body: "", contentType: "application/json").status == .ok)
            let third = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: 24 * 32))
            #expect(try await client.send(.post, "/booking/\(third)/cancel", token: ada, json: [String: Any]()).json["decided_by"] as? String == "ada")
        }
    }

    @Test func acceptedBookingsAreCancelledUntilTheirEventStartsAndFreeTheirTime() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita")
            let first = try await submitBooking(client, token: rita, bookingBody(topic: "first", hoursFromNow: 24 * 40, duration: 120))
            let second = try await submitBooking(client, token: rita, bookingBody(topic: "second", hoursFromNow: 24 * 40 + 1, duration: 120))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": first]).status == .ok)
            let blocked = try await client.send(.post, "/booking/accept", token: ada, json: ["id": second])
            #expect(blocked.status == .conflict)
            #expect(blocked.json["conflicting_id"] as? Int == first)

            // The requester withdraws the accepted booking; its time is free again.
            let cancelled = try await client.send(.post, "/booking/\(first)/cancel", token: rita, json: ["note": "moved"])
            #expect(cancelled.status == .ok, "\(cancelled.text)")
            #expect(cancelled.json["status"] as? String == "cancelled")
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": second]).status == .ok)
            #expect(try await historyActions(client, token: ada, id: first) == ["submit", "accept", "cancel"])

            // Once its event has started, an accepted booking stays accepted.
            try await startEvent(app.database, id: second, minutesAgo: 10)
            let late = try await client.send(.post, "/booking/\(second)/cancel", token: ada)
            #expect(late.status == .conflict)
            #expect(late.json["current_status"] as? String == "accepted")
            #expect(try await client.send(.get, "/booking/\(second)", token: ada).json["status"] as? String == "accepted")

            // Rejected is final.
            let third = try await submitBooking(client, token: rita, bookingBody(hoursFromNow: 24 * 50))
            #expect(try await client.send(.post, "/booking/reject", token: ada, json: ["id": third]).status == .ok)
            let rejected = try await client.send(.post, "/booking/\(third)/cancel", token: rita)
            #expect(rejected.status == .conflict)
            #expect(rejected.json["current_status"] as? String == "rejected")
        }
    }

    @Test func aPendingBookingWhoseEventStartedReadsAsExpiredEverywhere() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let stale = try await submitBooking(client, token: ada, bookingBody(topic: "stale", hoursFromNow: 24 * 3))
            let live = try await submitBooking(client, token: ada, bookingBody(topic: "live", hoursFromNow: 24 * 4))
            try await startEvent(app.database, id: stale)

            let got = try await client.send(.get, "/booking/\(stale)", token: ada)
            #expect(got.json["status"] as? String == "expired")
            #expect(got.json["decided_by"] is NSNull)
            func listed(_ status: String) async throws -> [Int] {
                let page = try await client.send(.get, "/booking?status=\(status)", token: ada)
                #expect(page.status == .ok, "\(page.text)")
                return (page.json["bookings"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
            }
            #expect(try await listed("expired") == [stale])
            #expect(try await listed("pending") == [live])
            let all = try await client.send(.get, "/booking", token: ada).json["bookings"] as? [[String: Any]] ?? []
            #expect(all.first { $0["id"] as? Int == stale }?["status"] as? String == "expired")

            for (route, body) in [("/booking/accept", ["id": stale]), ("/booking/reject", ["id": stale])] as [(String, [String: Any])] {
                let refused = try await client.send(.post, route, token: ada, json: body)
                #expect(refused.status == .conflict, "\(route)")
                #expect(refused.json["current_status"] as? String == "expired")
            }
            let cancel = try await client.send(.post, "/booking/\(stale)/cancel", token: ada)
            #expect(cancel.status == .conflict)
            #expect(cancel.json["current_status"] as? String == "expired")

            let history = try await client.send(.get, "/booking/\(stale)/history", token: ada).json["history"] as? [[String: Any]] ?? []
            #expect(history.map { $0["action"] as? String } == ["submit", "expire"])
            #expect(history.last?["at"] as? String == got.json["event_time"] as? String)

            let ics = try await client.send(.get, "/booking/\(stale)/calendar.ics", token: ada).text
            #expect(ics.contains("\r\nSTATUS:CANCELLED\r\n"))
            #expect(ics.contains("\r\nSEQUENCE:1\r\n"))
            // Stored, it is still pending: nothing was written for the expiry.
            #expect(try await app.database.scalar("SELECT status FROM bookings WHERE id = \(stale)", as: String.self) == "pending")
        }
    }

    /// Requests to decide bookings whose event starts at one instant, sent from 1.5 s before it
    /// to 1 s after: every decision that succeeded was made before the event started, every one
    /// refused after it left the booking untouched, and both happened.
    @Test func nothingIsDecidedAfterItsEventStarted() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 4).rounded(.up))
            var ids: [Int] = []
            for index in 0..<11 {
                ids.append(try await submitBooking(client, token: ada, bookingBody(topic: "edge \(index)", start: start)))
            }
            let outcomes = try await withThrowingTaskGroup(of: (Int, TestResponseBody).self) { group in
                for (index, id) in ids.enumerated() {
                    group.addTask {
                        let at = start.addingTimeInterval(-1.5 + Double(index) * 0.25)
                        try await Task.sleep(for: .seconds(max(0, at.timeIntervalSinceNow)))
                        // Only the first is an accept: the others overlap it.
                        let route = index == 0 ? "/booking/accept" : "/booking/reject"
                        return (id, try await client.send(.post, route, token: ada, json: ["id": id]))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            var decided = 0, refused = 0
            for (id, response) in outcomes {
                let stored = try await app.database.withDatabase { database in
                    try await database.withConnection(logger: TestEnvironment.logger) { connection in
                        let rows = try await connection.query("SELECT status, decided_at, event_time FROM bookings WHERE id = \(id)", logger: TestEnvironment.logger)
                        var found: (String, Date?, Date)?
                        for try await row in rows.decode((String, Date?, Date).self) { found = row }
                        return found
                    }
                }
                let (status, decidedAt, eventTime) = try #require(stored)
                if response.status == .ok {
                    decided += 1
                    #expect(try #require(decidedAt) < eventTime, "booking \(id) decided at \(String(describing: decidedAt))")
                } else {
                    refused += 1
                    #expect(response.status == .conflict, "\(response.text)")
                    #expect(response.json["current_status"] as? String == "expired")
                    #expect(status == "pending" && decidedAt == nil)
                }
            }
            #expect(decided > 0 && refused > 0, "decided \(decided), refused \(refused)")
        }
    }

    /// A requester cancels while an admin accepts, or rejects: one consistent outcome each time.
    @Test func cancelRacingADecisionEndsConsistently() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita")
            for round in 0..<24 {
                let decision = round.isMultiple(of: 2) ? "accept" : "reject"
                let id = try await submitBooking(client, token: rita, bookingBody(topic: "race \(round)", hoursFromNow: Double(24 * 60 + round * 5)))
                async let decided = client.send(.post, "/booking/\(decision)", token: ada, json: ["id": id])
                async let cancelled = client.send(.post, "/booking/\(id)/cancel", token: rita)
                let (decide, cancel) = try await (decided, cancelled)
                let final = try await client.send(.get, "/booking/\(id)", token: ada).json["status"] as? String
                let actions = try await historyActions(client, token: ada, id: id)
                switch (decision, decide.status, cancel.status) {
                case ("accept", .ok, .ok):
                    // Accepted first, then withdrawn: both happened, in that order.
                    #expect(final == "cancelled" && actions == ["submit", "accept", "cancel"], "round \(round)")
                case (_, .conflict, .ok):
                    #expect(decide.json["current_status"] as? String == "cancelled")
                    #expect(final == "cancelled" && actions == ["submit", "cancel"], "round \(round)")
                case ("reject", .ok, .conflict):
                    #expect(cancel.json["current_status"] as? String == "rejected")
                    #expect(final == "rejected" && actions == ["submit", "reject"], "round \(round)")
                default:
                    Issue.record("round \(round) \(decision): \(decide.status) \(decide.text) / cancel \(cancel.status) \(cancel.text)")
                }
            }
        }
    }
}

/// `GET /availability` (API.md): merged busy ranges of accepted bookings, nothing else.
@Suite struct AvailabilityTests {
    static func at(_ text: String) -> Date { RFC3339.parse(text)! }

    @Test func busyRangesAreMergedClippedAndRevealNothingElse() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita")
            let day = "2031-05-06"
            func book(_ time: String, _ minutes: Int, accept: Bool?) async throws -> Int {
                let id = try await submitBooking(client, token: ada, bookingBody(start: Self.at("\(day)T\(time):00Z"), duration: minutes))
                if let accept {
                    let answer = try await client.send(.post, accept ? "/booking/accept" : "/booking/reject", token: ada, json: ["id": id])
                    #expect(answer.status == .ok, "\(answer.text)")
                }
                return id
            }
            _ = try await book("09:00", 60, accept: true)   // 09–10
            _ = try await book("10:00", 30, accept: true)   // 10–10:30, touches: merged with 09–10
            _ = try await book("12:00", 60, accept: true)   // 12–13
            _ = try await book("11:00", 240, accept: nil)   // pending: not busy
            _ = try await book("14:00", 60, accept: false)  // rejected: not busy
            let cancelled = try await book("15:00", 60, accept: true)
            #expect(try await client.send(.post, "/booking/\(cancelled)/cancel", token: ada).status == .ok)
            _ = try await book("23:30", 120, accept: true)  // runs past the window's end

            let response = try await client.send(.get, "/availability?from=\(day)T09:30:00Z&to=\(day)T23:59:59.5Z", token: rita)
            #expect(response.status == .ok, "\(response.text)")
            #expect(response.headers[.contentType] == "application/json; charset=utf-8")
            let busy = try #require(response.json["busy"] as? [[String: String]])
            #expect(busy == [
                ["start": "\(day)T09:30:00Z", "end": "\(day)T10:30:00Z"],
                ["start": "\(day)T12:00:00Z", "end": "\(day)T13:00:00Z"],
                ["start": "\(day)T23:30:00Z", "end": "\(day)T23:59:59.500000Z"],
            ])
            #expect(response.json.keys.sorted() == ["busy"])

            // Offsets are read as instants; an empty window is an empty list.
            let shifted = try await client.send(.get, "/availability?from=\(day)T11:00:00%2B02:00&to=\(day)T12:30:00%2B02:00", token: rita)
            #expect(shifted.json["busy"] as? [[String: String]] == [["start": "\(day)T09:00:00Z", "end": "\(day)T10:30:00Z"]], "\(shifted.text)")
            let empty = try await client.send(.get, "/availability?from=2031-01-01T00:00:00Z&to=2031-01-02T00:00:00Z", token: rita)
            #expect(empty.status == .ok && empty.json["busy"] as? [Any] != nil && (empty.json["busy"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func theWindowIsCheckedBeforeAnythingIsRead() async throws {
        let app = try await TestApp.make()
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let rita = try await client.token("rita")
            for query in [
                "", "from=2031-01-01T00:00:00Z", "to=2031-01-01T00:00:00Z",
                "from=2031-01-02T00:00:00Z&to=2031-01-01T00:00:00Z", "from=2031-01-01T00:00:00Z&to=2031-01-01T00:00:00Z",
                "from=2031-01-01T00:00:00Z&to=2031-04-03T00:00:01Z", "from=2031-01-01&to=2031-01-02",
                "from=2031-01-01T00:00:00Z&to=2031-01-02T00:00:00Z&status=accepted",
            ] {
                let response = try await client.send(.get, "/availability?\(query)", token: rita)
                #expect(response.status == .badRequest, "\(query): \(response.status)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            // Exactly 92 days is allowed.
            #expect(try await client.send(.get, "/availability?from=2031-01-01T00:00:00Z&to=2031-04-03T00:00:00Z", token: rita).status == .ok)
            #expect(try await client.send(.get, "/availability?from=2031-01-01T00:00:00Z&to=2031-01-02T00:00:00Z").status == .unauthorized)
        }
    }

    /// Availability is read through the exclusion constraint's GiST index, not a scan of bookings.
    @Test func theBusyQueryUsesAnIndex() async throws {
        let database = try await TestDatabase.create()
        let plan: String = try await database.withDatabase { database in
            try await database.withConnection(logger: TestEnvironment.logger) { connection in
                try await connection.query("SET enable_seqscan = off", logger: TestEnvironment.logger)
                let query = PostgresBookingStore.availabilityQuery(from: Date(), to: Date().addingTimeInterval(86_400))
                let rows = try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds), logger: TestEnvironment.logger)
                var lines: [String] = []
                for try await line in rows.decode(String.self) { lines.append(line) }
                return lines.joined(separator: "\n")
            }
        }
        #expect(plan.contains("bookings_no_overlap"), "\(plan)")
    }
}
