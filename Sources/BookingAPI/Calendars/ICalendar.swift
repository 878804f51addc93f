import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// An iCalendar object (RFC 5545) of bookings, written by hand: CRLF line ends, lines folded at
/// 75 octets without splitting a UTF-8 sequence, TEXT values escaped, every time in UTC.
struct ICalendar {
    private var bytes: [UInt8] = []

    /// `name` becomes `X-WR-CALNAME`, the display name most calendar programs use for a feed.
    init(name: String? = nil) {
        bytes.reserveCapacity(512)
        line("BEGIN:VCALENDAR")
        line("VERSION:2.0")
        line("PRODID:-//Booking API//Bookings//EN")
        line("CALSCALE:GREGORIAN")
        if let name { line("X-WR-CALNAME:", text: name) }
    }

    mutating func add(_ booking: Booking) {
        let end = booking.eventTime.addingTimeInterval(TimeInterval(booking.durationMinutes * 60))
        // Without METHOD, DTSTAMP is when the event was last revised; an expiry revises it at
        // the event's start, which is after any stored change.
        let revised = booking.status == .expired ? max(booking.updatedAt, booking.eventTime) : booking.updatedAt
        line("BEGIN:VEVENT")
        // Stable for the booking's life, and unlike another deployment's booking of the same id.
        line("UID:booking-\(booking.id)-\(Int64(booking.createdAt.timeIntervalSince1970))@booking-api")
        line("DTSTAMP:" + Self.utc(revised))
        line("CREATED:" + Self.utc(booking.createdAt))
        line("LAST-MODIFIED:" + Self.utc(revised))
        line("DTSTART:" + Self.utc(booking.eventTime))
        line("DTEND:" + Self.utc(end))
        line("SUMMARY:", text: booking.topic)
        let address = booking.address
        line("LOCATION:", text: [address.street, address.city, address.state, address.country].compactMap { $0 }.joined(separator: ", "))
        line("STATUS:" + Self.status(booking.status))
        line("SEQUENCE:\(booking.statusChanges)")
        line("END:VEVENT")
    }

    /// The finished object's octets.
    var octets: [UInt8] {
        var copy = self
        copy.line("END:VCALENDAR")
        return copy.bytes
    }

    var document: String { String(decoding: octets, as: UTF8.self) }

    static func status(_ status: BookingStatus) -> String {
        switch status {
        case .pending: "TENTATIVE"
        case .accepted: "CONFIRMED"
        case .rejected, .cancelled, .expired: "CANCELLED"
        }
    }

    private mutating func line(_ content: String) {
        fold(Array(content.utf8))
    }

    private mutating func line(_ name: String, text value: String) {
        var content = Array(name.utf8)
        Self.escape(value, into: &content)
        fold(content)
    }

    /// Writes a content line folded so that no line is longer than 75 octets (continuations
    /// start with a space), never inside a UTF-8 sequence.
    private mutating func fold(_ content: [UInt8]) {
        var length = 0
        var index = 0
        while index < content.count {
            let lead = content[index]
            let width = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            let next = min(index + width, content.count)
            if length + (next - index) > 75 {
                bytes.append(contentsOf: [0x0D, 0x0A, 0x20])
                length = 1
            }
            bytes.append(contentsOf: content[index..<next])
            length += next - index
            index = next
        }
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    /// A TEXT value (RFC 5545 §3.3.11). A line break of any kind becomes `\n`; other control
    /// characters, which TEXT cannot carry, become spaces.
    static func escape(_ value: String, into out: inout [UInt8]) {
        var previous: UInt8 = 0
        for byte in value.utf8 {
            defer { previous = byte }
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: ";"), UInt8(ascii: ","):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0x0D:
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0A:
                if previous != 0x0D { out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")]) }
            case 0x09:
                out.append(byte)
            case 0x00..<0x20, 0x7F:
                out.append(0x20)
            default:
                out.append(byte)
            }
        }
    }

    static func escape(_ value: String) -> String {
        var out: [UInt8] = []
        escape(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `YYYYMMDDTHHMMSSZ`, whole seconds.
    static func utc(_ date: Date) -> String {
        var quoted: [UInt8] = []
        BookingJSON.date(date, into: &quoted)  // "YYYY-MM-DDTHH:MM:SSZ"
        return String(decoding: quoted.filter { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "-") && $0 != UInt8(ascii: ":") }, as: UTF8.self)
    }

    /// `text/calendar` with a strong `ETag` of its bytes; 304 when `If-None-Match` names it.
    func response(for request: Request, extraHeaders: HTTPFields = [:]) -> Response {
        let body = octets
        let digest = SHA256.hash(data: body).prefix(16).map { String(format: "%02x", $0) }.joined()
        let etag = "\"\(digest)\""
        var headers = extraHeaders
        headers[.eTag] = etag
        // Revalidate every time: a change must reach the calendar on its next poll.
        headers[.cacheControl] = "private, no-cache"
        if let condition = request.headers[.ifNoneMatch], Self.matches(condition, etag: etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = "text/calendar; charset=utf-8"
        headers[.contentLength] = String(body.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2).
    static func matches(_ condition: String, etag: String) -> Bool {
        condition.split(separator: ",").contains { candidate in
            var tag = candidate.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag == etag
        }
    }
}
