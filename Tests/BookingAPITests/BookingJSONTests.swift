import Foundation
import NIOCore
import Testing

@testable import BookingAPI

/// The hand-written JSON must be exactly what JSONEncoder would write.
@Suite struct BookingJSONTests {
    func sample(topic: String, state: String?, decided: Bool, at seconds: Double) -> Booking {
        Booking(
            id: 42, topic: topic, eventTime: Date(timeIntervalSince1970: seconds + 86_400 * 400 + 0.75), durationMinutes: 90,
            address: Address(street: "1 \"Quoted\" Rd\\", city: "Zürich/日本", state: state, country: "CH"),
            requestedBy: "a+b@example.com", status: decided ? .accepted : .pending, submittedBy: "alice",
            decidedBy: decided ? "admin" : nil, decidedAt: decided ? Date(timeIntervalSince1970: seconds + 5) : nil,
            decisionNote: decided ? "line\nbreak\ttab\u{1}ctl" : nil,
            createdAt: Date(timeIntervalSince1970: seconds), updatedAt: Date(timeIntervalSince1970: seconds + 0.999)
        )
    }

    @Test(arguments: [0.0, 951_782_400, 1_795_000_000.5, 4_102_444_799, 1_709_164_800])
    func matchesJSONEncoder(seconds: Double) throws {
        for booking in [
            sample(topic: "Plain", state: nil, decided: false, at: seconds),
            sample(topic: "Emoji 🎉 and \u{7F} and \u{1F}", state: "NY", decided: true, at: seconds),
        ] {
            let expected = try JSONEncoder.bookingAPI.encode(booking)
            let written = BookingJSON.booking(booking)
            #expect(Data(written.readableBytesView) == expected, "\(String(decoding: expected, as: UTF8.self))")
        }
    }

    @Test func pageShape() throws {
        let booking = sample(topic: "x", state: nil, decided: false, at: 1_800_000_000)
        let page = BookingJSON.page([booking, booking], nextCursor: "abc")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(page.readableBytesView)) as? [String: Any])
        #expect((object["bookings"] as? [Any])?.count == 2)
        #expect(object["next_cursor"] as? String == "abc")
        let empty = try #require(try JSONSerialization.jsonObject(with: Data(BookingJSON.page([], nextCursor: nil).readableBytesView)) as? [String: Any])
        #expect(empty["next_cursor"] is NSNull)
    }

    @Test func integersAsStringWritesThem() {
        var values: [Int64] = [0, 1, 9, 10, 11, 99, 100, 101, 999_999, 1_000_000, .max, .min, -1, -10]
        var power: Int64 = 1
        for _ in 0..<18 {
            power *= 10
            values += [power - 1, power, power + 1]
        }
        for value in values {
            var out: [UInt8] = []
            BookingJSON.integer(value, into: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(value))
        }
    }
}
