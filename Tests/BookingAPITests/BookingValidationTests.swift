import Foundation
import Testing

@testable import BookingAPI

/// Each field rule of the contract's table, at its boundaries.
@Suite struct BookingValidationTests {
    func body(_ changes: [String: JSONValue] = [:], address: [String: JSONValue] = [:], removing: [String] = []) -> [String: JSONValue] {
        var addressObject: [String: JSONValue] = ["street": .string("1 Main St"), "city": .string("Springfield"), "country": .string("US")]
        for (key, value) in address { addressObject[key] = value }
        var object: [String: JSONValue] = [
            "topic": .string("Planning"),
            "event_time": .string("2099-05-01T09:30:00+02:00"),
            "duration_minutes": .number(60),
            "address": .object(addressObject),
            "requested_by": .string("someone@example.org"),
        ]
        for (key, value) in changes { object[key] = value }
        for key in removing { object[key] = nil }
        return object
    }

    func fields(_ object: [String: JSONValue]) -> [String] {
        do {
            _ = try BookingValidation.submission(object)
            return []
        } catch {
            return (error.errors ?? []).map(\.field)
        }
    }

    @Test func validBodyIsNormalised() throws {
        let booking = try BookingValidation.submission(body(["topic": .string("  Planning  ")], address: ["country": .string("usa"), "state": .string("  ")]))
        #expect(booking.topic == "Planning")
        #expect(booking.address.country == "US")
        #expect(booking.address.state == nil)
        #expect(booking.eventTime == ISO8601DateFormatter().date(from: "2099-05-01T07:30:00Z"))
    }

    @Test func topicLengths() {
        #expect(fields(body(["topic": .string("")])) == ["topic"])
        #expect(fields(body(["topic": .string("   ")])) == ["topic"])
        #expect(fields(body(["topic": .string("a")])).isEmpty)
        #expect(fields(body(["topic": .string(String(repeating: "é", count: 200))])).isEmpty)
        #expect(fields(body(["topic": .string(String(repeating: "a", count: 201))])) == ["topic"])
        #expect(fields(body(["topic": .number(5)])) == ["topic"])
        #expect(fields(body(removing: ["topic"])) == ["topic"])
    }

    @Test func nulCharactersAreRefusedBeforeTheDatabase() {
        #expect(fields(body(["topic": .string("a\u{0}b")])) == ["topic"])
        #expect(fields(body(address: ["city": .string("x\u{0}")])) == ["address.city"])
    }

    @Test func durationBounds() {
        #expect(fields(body(["duration_minutes": .number(0)])) == ["duration_minutes"])
        #expect(fields(body(["duration_minutes": .number(1)])).isEmpty)
        #expect(fields(body(["duration_minutes": .number(1440)])).isEmpty)
        #expect(fields(body(["duration_minutes": .number(1441)])) == ["duration_minutes"])
        #expect(fields(body(["duration_minutes": .number(30.5)])) == ["duration_minutes"])
        #expect(fields(body(["duration_minutes": .string("60")])) == ["duration_minutes"])
    }

    @Test func eventTimeMustBeFutureWithOffset() {
        #expect(fields(body(["event_time": .string("2001-01-01T00:00:00Z")])) == ["event_time"])
        #expect(fields(body(["event_time": .string("2099-01-01T00:00:00")])) == ["event_time"])
        #expect(fields(body(["event_time": .string("2099-01-01")])) == ["event_time"])
        #expect(fields(body(["event_time": .string("tomorrow")])) == ["event_time"])
        // Whole seconds only: a fraction would be stored but not shown (README "Choices").
        #expect(fields(body(["event_time": .string("2099-01-01T00:00:00.250Z")])) == ["event_time"])
        #expect(fields(body(["event_time": .string("2099-01-01T00:00:00.000Z")])).isEmpty)
        #expect(fields(body(["event_time": .string("2099-01-01T00:00:00-05:00")])).isEmpty)
        let soon = ISO8601DateFormatter().string(from: Date().addingTimeInterval(120))
        #expect(fields(body(["event_time": .string(soon)])).isEmpty)
        let justPast = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-1))
        #expect(fields(body(["event_time": .string(justPast)])) == ["event_time"])
    }

    @Test func addressRules() {
        #expect(fields(body(address: ["street": .string("")])) == ["address.street"])
        #expect(fields(body(address: ["street": .string(String(repeating: "s", count: 201))])) == ["address.street"])
        #expect(fields(body(address: ["city": .string(String(repeating: "c", count: 100))])).isEmpty)
        #expect(fields(body(address: ["city": .string(String(repeating: "c", count: 101))])) == ["address.city"])
        #expect(fields(body(address: ["state": .string(String(repeating: "s", count: 101))])) == ["address.state"])
        #expect(fields(body(address: ["state": .null])).isEmpty)
        #expect(fields(body(address: ["country": .string("Atlantis")])) == ["address.country"])
        #expect(fields(body(address: ["zip": .string("12345")])) == ["address.zip"])
        #expect(fields(body(["address": .string("1 Main St")])) == ["address"])
    }

    @Test func countriesByNameAndCode() throws {
        let countries = Countries.shared
        #expect(countries.alpha2(for: "usa") == "US")
        #expect(countries.alpha2(for: "Japan") == "JP")
        #expect(countries.alpha2(for: "jp") == "JP")
        #expect(countries.alpha2(for: "JPN") == "JP")
        #expect(countries.alpha2(for: "united kingdom") == "GB")
        #expect(countries.alpha2(for: "Côte d'Ivoire") == "CI")
        #expect(countries.alpha2(for: "cote d'ivoire") == "CI")
        #expect(countries.alpha2(for: "CÔTE D'IVOIRE") == "CI")
        #expect(countries.alpha2(for: "aland islands") == "AX")
        #expect(countries.alpha2(for: " \u{00A0}Japan\n") == "JP")
        #expect(countries.alpha2(for: "Atlantis") == nil)
        #expect(countries.alpha2(for: "") == nil)
    }

    /// The fast path trims exactly as Foundation does.
    @Test func trimmingMatchesFoundation() {
        for text in ["", " ", "x", " x", "x ", "\tx\n", "\u{00A0}x\u{2003}", "x y", "\u{200B}x", "日本 ", "\r\n", "a\u{0085}"] {
            #expect(text.trimmedOfWhitespace() == text.trimmingCharacters(in: .whitespacesAndNewlines), "\(text.unicodeScalars.map(\.value))")
        }
    }

    @Test func emailRule() {
        for good in ["a@b.co", "first.last+tag@sub.example.org"] {
            #expect(fields(body(["requested_by": .string(good)])).isEmpty, "\(good)")
        }
        for bad in ["plainaddress", "a@b", "a@@b.co", "a b@c.co", ".a@b.co", "a@-b.co", "a@b..co", String(repeating: "a", count: 250) + "@b.co"] {
            #expect(fields(body(["requested_by": .string(bad)])) == ["requested_by"], "\(bad)")
        }
    }

    @Test func everyViolationIsReportedAtOnce() {
        let all = fields([
            "topic": .string(""), "event_time": .string("2001-01-01T00:00:00Z"), "duration_minutes": .number(0),
            "address": .object(["street": .string(""), "city": .string(""), "country": .string("Nowhere")]),
            "requested_by": .string("nope"), "priority": .string("high"),
        ])
        #expect(Set(all) == ["topic", "event_time", "duration_minutes", "address.street", "address.city", "address.country", "requested_by", "priority"])
    }

    @Test func decisionBody() throws {
        #expect(try BookingValidation.decision(["id": .number(3), "note": .string(" ok ")]) == (3, "ok"))
        #expect(throws: ProblemError.self) { try BookingValidation.decision(["id": .string("3")]) }
        #expect(throws: ProblemError.self) { try BookingValidation.decision(["id": .number(3), "note": .string(String(repeating: "n", count: 2001))]) }
        #expect(throws: ProblemError.self) { try BookingValidation.decision(["id": .number(3), "extra": .bool(true)]) }
    }
}
