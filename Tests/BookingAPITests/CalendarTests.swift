import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import BookingAPI

/// What the `icalendar` package (PyPI) read from an iCalendar object: `Tests/ics/parse_ics.py`.
struct ParsedCalendar {
    let json: [String: Any]
    var events: [[String: Any]] { json["events"] as? [[String: Any]] ?? [] }

    /// scripts/test installs the package; `ICALENDAR_PYTHON` may name another interpreter.
    static func parse(_ ics: String) async throws -> ParsedCalendar {
        let python = ProcessInfo.processInfo.environment["ICALENDAR_PYTHON"] ?? "/usr/bin/env"
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/ics/parse_ics.py").path
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("calendar-\(UUID()).ics")
        try Data(ics.utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let arguments = python == "/usr/bin/env" ? ["python3", script] : [script]
        let result = try await runProgram("/bin/sh", ["-c", "\"$0\" \"$@\" < \"\(input.path)\"", python] + arguments)
        guard result.status == 0 else {
            throw TestSetupError("the icalendar parser refused it (is the icalendar package installed? scripts/test installs it): \(result.output)")
        }
        // The parser's JSON is its last line; anything before it is the runner's noise.
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        guard let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestSetupError("unexpected parser output: \(result.output)")
        }
        return ParsedCalendar(json: json)
    }
}

/// What khal, a calendar program (PyPI), holds after importing an iCalendar object:
/// `Tests/ics/khal_import.py`. scripts/test installs khal and sets `KHAL`.
func importIntoKhal(_ ics: String, from day: String, days: Int) async throws -> [[String: Any]] {
    guard let khal = ProcessInfo.processInfo.environment["KHAL"] else {
        throw TestSetupError("KHAL is not set: run the tests through scripts/test, which installs khal")
    }
    let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/ics/khal_import.py").path
    let input = FileManager.default.temporaryDirectory.appendingPathComponent("khal-\(UUID()).ics")
    try Data(ics.utf8).write(to: input)
    defer { try? FileManager.default.removeItem(at: input) }
    let python = ProcessInfo.processInfo.environment["ICALENDAR_PYTHON"] ?? "python3"
    let result = try await runProgram("/bin/sh", ["-c", "\"$0\" \"$@\" < \"\(input.path)\"", python, script, khal, day, String(days)])
    guard result.status == 0 else { throw TestSetupError("khal refused it: \(result.output)") }
    let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
    guard let events = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[String: Any]] else {
        throw TestSetupError("unexpected khal output: \(result.output)")
    }
    return events
}

/// RFC 5545 as a reader needs it: CRLF, folded lines of at most 75 octets, TEXT escaping.
func checkContentLines(_ ics: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let bytes = Array(ics.utf8)
    #expect(bytes.suffix(2) == [13, 10], "ends with CRLF", sourceLocation: sourceLocation)
    for (index, byte) in bytes.enumerated() where byte == 10 {
        #expect(index > 0 && bytes[index - 1] == 13, "a bare LF at octet \(index)", sourceLocation: sourceLocation)
    }
    for line in ics.components(separatedBy: "\r\n") {
        #expect(line.utf8.count <= 75, "longer than 75 octets: \(line)", sourceLocation: sourceLocation)
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" }, "a control character in \(line.debugDescription)", sourceLocation: sourceLocation)
    }
}

/// Unfolds content lines (RFC 5545 §3.1) to read properties back in the tests.
func unfolded(_ ics: String) -> [String] {
    ics.replacingOccurrences(of: "\r\n ", with: "").components(separatedBy: "\r\n").filter { !$0.isEmpty }
}

@Suite struct CalendarTests {
    @Test func escapingFoldingAndTimesFollowRFC5545() {
        #expect(ICalendar.escape(#"a,b;c\d"#) == #"a\,b\;c\\d"#)
        #expect(ICalendar.escape("one\r\ntwo\nthree\rfour") == #"one\ntwo\nthree\nfour"#)
        #expect(ICalendar.escape("tab\there\u{7}bell") == "tab\there bell")
        #expect(ICalendar.utc(RFC3339.parse("2030-01-02T03:04:05+01:00")!) == "20300102T020405Z")
        var calendar = ICalendar(name: String(repeating: "é", count: 100))
        let document = calendar.document
        checkContentLines(document)
        // Folding never splits a UTF-8 sequence: every folded piece is valid UTF-8 by itself.
        for line in document.components(separatedBy: "\r\n") {
            #expect(String(validating: Array(line.utf8), as: UTF8.self) != nil)
        }
        #expect(unfolded(document).contains("X-WR-CALNAME:" + String(repeating: "é", count: 100)))
        calendar = ICalendar()
        #expect(calendar.document == "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Booking API//Bookings//EN\r\nCALSCALE:GREGORIAN\r\nEND:VCALENDAR\r\n")
    }

    /// A booking with every character that needs care, read back by an iCalendar library we did
    /// not write: what it reads is exactly what was stored.
    @Test func anIndependentParserReadsBackWhatWasStored() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let topic = "Quarterly review, part 2; budget \\ plans — ünïcödé 日本語 🎉 " + String(repeating: "long ", count: 20) + "\nsecond line"
            var body = bookingBody(topic: topic, start: RFC3339.parse("2031-03-04T05:06:07+09:00")!, duration: 90)
            body["address"] = ["street": "1-2-3 Chiyoda, Building; \"A\"", "city": "Tōkyō", "state": "Tokyo-to", "country": "JP"]
            let id = try await submitBooking(client, token: ada, body)
            let stored = try await client.send(.get, "/booking/\(id)", token: ada).json

            let response = try await client.send(.get, "/booking/\(id)/calendar.ics", token: ada)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/calendar; charset=utf-8")
            #expect(response.headers[.contentDisposition] == #"attachment; filename="booking-\#(id).ics""#)
            checkContentLines(response.text)
            let parsed = try await ParsedCalendar.parse(response.text)
            #expect(parsed.json["version"] as? String == "2.0")
            let event = try #require(parsed.events.first)
            #expect(parsed.events.count == 1)
            #expect(event["summary"] as? String == stored["topic"] as? String)
            #expect(event["location"] as? String == "1-2-3 Chiyoda, Building; \"A\", Tōkyō, Tokyo-to, JP")
            #expect(event["dtstart"] as? String == "2031-03-03T20:06:07Z")
            #expect(event["dtend"] as? String == "2031-03-03T21:36:07Z")
            #expect(event["status"] as? String == "TENTATIVE")
            #expect(event["sequence"] as? Int == 0)
            let uid = try #require(event["uid"] as? String)

            // Accepting and cancelling move STATUS and SEQUENCE; the UID stays.
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": id]).status == .ok)
            let accepted = try await ParsedCalendar.parse(try await client.send(.get, "/booking/\(id)/calendar.ics", token: ada).text)
            #expect(accepted.events.first?["status"] as? String == "CONFIRMED")
            #expect(accepted.events.first?["sequence"] as? Int == 1)
            #expect(accepted.events.first?["uid"] as? String == uid)
            #expect(try await client.send(.post, "/booking/\(id)/cancel", token: ada).status == .ok)
            let cancelled = try await ParsedCalendar.parse(try await client.send(.get, "/booking/\(id)/calendar.ics", token: ada).text)
            #expect(cancelled.events.first?["status"] as? String == "CANCELLED")
            #expect(cancelled.events.first?["sequence"] as? Int == 2)
            #expect(cancelled.events.first?["uid"] as? String == uid)
        }
    }

    /// A calendar program subscribed to a feed: khal imports it and shows each booking at its
    /// time, with its title, place and status, exactly as stored.
    @Test func aCalendarProgramImportsAFeed() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let topic = "Board meeting, Q3; notes \\ actions — ünïcödé 日本語 🎉 " + String(repeating: "agenda ", count: 12)
            var body = bookingBody(topic: topic, start: RFC3339.parse("2031-06-01T09:30:00Z")!, duration: 45)
            body["address"] = ["street": "5 Rue de la Paix; 2nd floor", "city": "Paris", "state": NSNull(), "country": "France"]
            let accepted = try await submitBooking(client, token: ada, body)
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": accepted]).status == .ok)
            _ = try await submitBooking(client, token: ada, bookingBody(topic: "Tentative\nplan", start: RFC3339.parse("2031-06-02T23:30:00Z")!, duration: 120))
            let url = try #require(try await client.send(.post, "/calendar-feeds", token: ada, json: ["name": "khal"]).json["url"] as? String)
            let feed = try await client.send(.get, url)
            #expect(feed.status == .ok)

            let events = try await importIntoKhal(feed.text, from: "2031-05-31", days: 5)
            #expect(events.count == 2, "\(events)")
            let first = try #require(events.first), second = try #require(events.last)
            #expect(first["title"] as? String == topic.trimmingCharacters(in: .whitespaces))
            #expect(first["location"] as? String == "5 Rue de la Paix; 2nd floor, Paris, FR")
            #expect(first["start"] as? String == "2031-06-01T09:30" && first["end"] as? String == "2031-06-01T10:15")
            #expect(first["status"] as? String == "CONFIRMED")
            #expect(second["title"] as? String == "Tentative\nplan")
            #expect(second["start"] as? String == "2031-06-02T23:30" && second["end"] as? String == "2031-06-03T01:30")
            #expect(second["status"] as? String == "TENTATIVE")
        }
    }

    @Test func aBookingsCalendarIsForWhoeverMayReadTheBooking() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.createUser("ron", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita"), ron = try await client.token("ron")
            let id = try await submitBooking(client, token: rita)
            #expect(try await client.send(.get, "/booking/\(id)/calendar.ics", token: rita).status == .ok)
            #expect(try await client.send(.get, "/booking/\(id)/calendar.ics", token: ada).status == .ok)
            #expect(try await client.send(.get, "/booking/\(id)/calendar.ics", token: ron).status == .notFound)
            #expect(try await client.send(.get, "/booking/\(id)/calendar.ics").status == .unauthorized)
            // Conditional requests: the same bytes answer 304 with no body, a change a new ETag.
            let first = try await client.send(.get, "/booking/\(id)/calendar.ics", token: rita)
            let etag = try #require(first.headers[.eTag])
            let same = try await client.send(.get, "/booking/\(id)/calendar.ics", token: rita, headers: [.ifNoneMatch: etag])
            #expect(same.status == .notModified && same.data.isEmpty && same.headers[.eTag] == etag)
            #expect(try await client.send(.post, "/booking/reject", token: ada, json: ["id": id]).status == .ok)
            let changed = try await client.send(.get, "/booking/\(id)/calendar.ics", token: rita, headers: [.ifNoneMatch: etag])
            #expect(changed.status == .ok && changed.headers[.eTag] != etag)
            #expect(unfolded(changed.text).contains("STATUS:CANCELLED"))
        }
    }

    @Test func feedsListLiveBookingsBehindASecretURLUntilRevoked() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let ada = try await client.token("ada"), rita = try await client.token("rita")
            // A requester cannot make a feed; a name is required.
            #expect(try await client.send(.post, "/calendar-feeds", token: rita, json: ["name": "mine"]).status == .forbidden)
            #expect(try await client.send(.get, "/calendar-feeds", token: rita).status == .forbidden)
            #expect(try await client.send(.post, "/calendar-feeds", token: ada, json: ["name": "  "]).status == .unprocessableContent)
            #expect(try await client.send(.post, "/calendar-feeds", token: ada, json: ["name": "x", "color": "red"]).status == .unprocessableContent)

            let accepted = try await submitBooking(client, token: rita, bookingBody(topic: "accepted one", hoursFromNow: 24 * 10))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": accepted]).status == .ok)
            let pending = try await submitBooking(client, token: rita, bookingBody(topic: "pending one", hoursFromNow: 24 * 11))
            let rejected = try await submitBooking(client, token: rita, bookingBody(topic: "rejected one", hoursFromNow: 24 * 12))
            #expect(try await client.send(.post, "/booking/reject", token: ada, json: ["id": rejected]).status == .ok)
            let cancelled = try await submitBooking(client, token: rita, bookingBody(topic: "cancelled one", hoursFromNow: 24 * 13))
            #expect(try await client.send(.post, "/booking/\(cancelled)/cancel", token: rita).status == .ok)
            let expired = try await submitBooking(client, token: rita, bookingBody(topic: "expired one", hoursFromNow: 24 * 14))
            try await startEvent(app.database, id: expired)
            let recentPast = try await submitBooking(client, token: rita, bookingBody(topic: "last week", hoursFromNow: 24 * 15, duration: 30))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": recentPast]).status == .ok)
            try await startEvent(app.database, id: recentPast, minutesAgo: 7 * 24 * 60)
            let longAgo = try await submitBooking(client, token: rita, bookingBody(topic: "long ago", hoursFromNow: 24 * 16, duration: 30))
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": longAgo]).status == .ok)
            try await startEvent(app.database, id: longAgo, minutesAgo: 31 * 24 * 60)

            let created = try await client.send(.post, "/calendar-feeds", token: ada, json: ["name": "Front desk"])
            #expect(created.status == .created, "\(created.text)")
            #expect(created.headers[.cacheControl] == "no-store")
            let url = try #require(created.json["url"] as? String)
            let feedID = try #require(created.json["id"] as? Int)
            let secret = String(url.dropFirst("/calendar-feeds/".count).dropLast(".ics".count))
            #expect(url.hasPrefix("/calendar-feeds/") && url.hasSuffix(".ics"))
            #expect(Data(base64URL: secret)?.count ?? 0 >= 16, "at least 128 random bits")

            // The list never shows the URL; the database keeps only a hash of the secret.
            let list = try await client.send(.get, "/calendar-feeds", token: ada)
            #expect((list.json["feeds"] as? [[String: Any]])?.map { $0["name"] as? String } == ["Front desk"])
            #expect(!list.text.contains(secret))
            let stored = try await app.database.scalar("SELECT row_to_json(f)::text FROM calendar_feeds AS f", as: String.self) ?? ""
            #expect(!stored.contains(secret))
            let hash = try await app.database.scalar("SELECT encode(secret_hash, 'hex') FROM calendar_feeds", as: String.self)
            #expect(hash == SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined())

            // No bearer token: the secret is the credential.
            let feed = try await client.send(.get, url)
            #expect(feed.status == .ok, "\(feed.text)")
            #expect(feed.headers[.contentType] == "text/calendar; charset=utf-8")
            checkContentLines(feed.text)
            let parsed = try await ParsedCalendar.parse(feed.text)
            #expect(parsed.json["name"] as? String == "Front desk")
            let summaries = parsed.events.compactMap { $0["summary"] as? String }
            #expect(summaries == ["last week", "accepted one", "pending one"], "\(summaries)")
            #expect(parsed.events.compactMap { $0["status"] as? String } == ["CONFIRMED", "CONFIRMED", "TENTATIVE"])

            // ETag and If-None-Match; a change shows at the next poll.
            let etag = try #require(feed.headers[.eTag])
            let unchanged = try await client.send(.get, url, headers: [.ifNoneMatch: etag])
            #expect(unchanged.status == .notModified && unchanged.data.isEmpty)
            #expect(try await client.send(.get, url, headers: [.ifNoneMatch: "\"other\", W/\(etag)"]).status == .notModified)
            #expect(try await client.send(.post, "/booking/accept", token: ada, json: ["id": pending]).status == .ok)
            let changed = try await client.send(.get, url, headers: [.ifNoneMatch: etag])
            #expect(changed.status == .ok && changed.headers[.eTag] != etag)

            // Wrong secrets, and a revoked feed, are 404 at once.
            #expect(try await client.send(.get, "/calendar-feeds/\(String(secret.reversed())).ics").status == .notFound)
            #expect(try await client.send(.get, "/calendar-feeds/short.ics").status == .notFound)
            #expect(try await client.send(.delete, "/calendar-feeds/\(feedID)", token: rita).status == .forbidden)
            let revoked = try await client.send(.delete, "/calendar-feeds/\(feedID)", token: ada)
            #expect(revoked.status == .noContent)
            #expect(try await client.send(.get, url).status == .notFound)
            #expect(try await client.send(.delete, "/calendar-feeds/\(feedID)", token: ada).status == .notFound)
            let audit = try await client.send(.get, "/audit?target_type=calendar_feed", token: ada)
            #expect((audit.json["events"] as? [[String: Any]])?.compactMap { $0["action"] as? String } == ["calendar_feed.revoked", "calendar_feed.created"])
        }
    }
}
