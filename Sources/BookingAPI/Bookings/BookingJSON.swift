import Foundation
import Hummingbird

/// Bookings written as JSON by hand. Foundation's JSONEncoder took ~46 % of a list request's
/// CPU (BENCHMARKS.md); this writes the same bytes as `JSONEncoder.bookingAPI` (sorted keys,
/// RFC 3339 UTC seconds, explicit nulls), which `BookingJSONTests` checks byte for byte.
enum BookingJSON {
    static func page(_ bookings: [Booking], nextCursor: String?) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(64 + bookings.count * 480)
        out.append(contentsOf: #"{"bookings":["#.utf8)
        for (index, booking) in bookings.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            write(booking, into: &out)
        }
        out.append(contentsOf: #"],"next_cursor":"#.utf8)
        optionalString(nextCursor, into: &out)
        out.append(UInt8(ascii: "}"))
        return ByteBuffer(bytes: out)
    }

    static func booking(_ booking: Booking) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        write(booking, into: &out)
        return ByteBuffer(bytes: out)
    }

    static func write(_ booking: Booking, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"address":{"city":"#.utf8)
        string(booking.address.city, into: &out)
        out.append(contentsOf: #","country":"#.utf8)
        string(booking.address.country, into: &out)
        out.append(contentsOf: #","state":"#.utf8)
        optionalString(booking.address.state, into: &out)
        out.append(contentsOf: #","street":"#.utf8)
        string(booking.address.street, into: &out)
        out.append(contentsOf: #"},"created_at":"#.utf8)
        date(booking.createdAt, into: &out)
        out.append(contentsOf: #","decided_at":"#.utf8)
        if let decidedAt = booking.decidedAt { date(decidedAt, into: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(contentsOf: #","decided_by":"#.utf8)
        optionalString(booking.decidedBy, into: &out)
        out.append(contentsOf: #","decision_note":"#.utf8)
        optionalString(booking.decisionNote, into: &out)
        out.append(contentsOf: #","duration_minutes":"#.utf8)
        integer(Int64(booking.durationMinutes), into: &out)
        out.append(contentsOf: #","event_time":"#.utf8)
        date(booking.eventTime, into: &out)
        out.append(contentsOf: #","id":"#.utf8)
        integer(booking.id, into: &out)
        out.append(contentsOf: #","requested_by":"#.utf8)
        string(booking.requestedBy, into: &out)
        out.append(contentsOf: #","status":"#.utf8)
        string(booking.status.rawValue, into: &out)
        out.append(contentsOf: #","submitted_by":"#.utf8)
        string(booking.submittedBy, into: &out)
        out.append(contentsOf: #","topic":"#.utf8)
        string(booking.topic, into: &out)
        out.append(contentsOf: #","updated_at":"#.utf8)
        date(booking.updatedAt, into: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func optionalString(_ value: String?, into out: inout [UInt8]) {
        if let value { string(value, into: &out) } else { out.append(contentsOf: "null".utf8) }
    }

    static let hex = Array("0123456789abcdef".utf8)

    /// A JSON string as JSONEncoder writes it with `.withoutEscapingSlashes`.
    static func string(_ value: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most values need no escape: copy them whole rather than byte by byte.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: value.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x00..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `"YYYY-MM-DDTHH:MM:SSZ"` in UTC, whole seconds (as `.iso8601` writes it).
    static func date(_ value: Date, into out: inout [UInt8]) {
        let seconds = Int64(value.timeIntervalSince1970.rounded(.down))
        var days = seconds / 86_400
        var rest = seconds % 86_400
        if rest < 0 {
            rest += 86_400
            days -= 1
        }
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        out.append(UInt8(ascii: "\""))
        digits(year, 4, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(month, 2, into: &out)
        out.append(UInt8(ascii: "-"))
        digits(day, 2, into: &out)
        out.append(UInt8(ascii: "T"))
        digits(rest / 3600, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(rest % 3600 / 60, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        digits(rest % 60, 2, into: &out)
        out.append(contentsOf: "Z\"".utf8)
    }

    /// `value` (0 ≤ value < 10^width) in exactly `width` digits, zero-padded; no allocation.
    private static func digits(_ value: Int64, _ width: Int, into out: inout [UInt8]) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    /// A decimal integer as `String(value)` writes it, without the intermediate string.
    static func integer(_ value: Int64, into out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            // The magnitude as UInt64 also covers Int64.min.
            unsigned(value.magnitude, into: &out)
        } else {
            unsigned(UInt64(value), into: &out)
        }
    }

    private static func unsigned(_ value: UInt64, into out: inout [UInt8]) {
        var divisor: UInt64 = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    static func response(_ body: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes)],
            body: .init(byteBuffer: body)
        )
    }
}
