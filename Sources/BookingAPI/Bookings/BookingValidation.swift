import Foundation

/// Field rules of the contract's booking table. Collects every violation, by dotted path.
struct FieldReader {
    private(set) var errors: [FieldError] = []
    let object: [String: JSONValue]
    let prefix: String

    init(_ object: [String: JSONValue], prefix: String = "", allowed: Set<String>) {
        self.object = object
        self.prefix = prefix
        for key in object.keys.sorted() where !allowed.contains(key) {
            errors.append(FieldError(field: prefix + key, message: "is not a known field"))
        }
    }

    mutating func fail(_ key: String, _ message: String) {
        errors.append(FieldError(field: prefix + key, message: message))
    }

    /// A trimmed string of `lengths` Unicode scalars (as PostgreSQL's char_length counts).
    mutating func string(_ key: String, lengths: ClosedRange<Int>, optional: Bool = false) -> String? {
        guard let value = object[key], value != .null else {
            if !optional { fail(key, "is required") }
            return nil
        }
        guard case .string(let raw) = value else {
            fail(key, "must be a string")
            return nil
        }
        // PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
        guard !raw.unicodeScalars.contains("\u{0}") else {
            fail(key, "must not contain NUL characters")
            return nil
        }
        let trimmed = raw.trimmedOfWhitespace()
        if optional, trimmed.isEmpty { return nil }
        guard lengths.contains(trimmed.unicodeScalars.count) else {
            fail(key, trimmed.isEmpty ? "must not be empty" : "must be \(lengths.lowerBound)–\(lengths.upperBound) characters")
            return nil
        }
        return trimmed
    }

    mutating func integer(_ key: String, range: ClosedRange<Int>) -> Int? {
        guard let value = object[key], value != .null else {
            fail(key, "is required")
            return nil
        }
        guard case .number(let number) = value, number.rounded() == number, abs(number) < 1e12 else {
            fail(key, "must be a whole number")
            return nil
        }
        guard range.contains(Int(number)) else {
            fail(key, "must be from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return Int(number)
    }

    mutating func object(_ key: String) -> [String: JSONValue]? {
        guard let value = object[key], value != .null else {
            fail(key, "is required")
            return nil
        }
        guard case .object(let inner) = value else {
            fail(key, "must be an object")
            return nil
        }
        return inner
    }

    mutating func merge(_ other: FieldReader) {
        errors.append(contentsOf: other.errors)
    }
}

enum BookingValidation {
    static let submissionFields: Set<String> = ["topic", "event_time", "duration_minutes", "address", "requested_by"]
    static let addressFields: Set<String> = ["street", "city", "state", "country"]

    static func submission(_ body: [String: JSONValue], now: Date = Date(), countries: Countries = .shared) throws(ProblemError) -> NewBooking {
        var reader = FieldReader(body, allowed: submissionFields)
        let topic = reader.string("topic", lengths: 1...200)
        var eventTime: Date?
        if let text = reader.string("event_time", lengths: 1...64) {
            if let date = RFC3339.parse(text) {
                // Whole seconds only: what is stored is then exactly what every answer shows.
                if date.timeIntervalSince1970.rounded(.down) != date.timeIntervalSince1970 {
                    reader.fail("event_time", "must be whole seconds (no fraction of a second)")
                } else if date > now { eventTime = date } else { reader.fail("event_time", "must be in the future") }
            } else {
                reader.fail("event_time", "must be an RFC 3339 date-time with a time-zone offset")
            }
        }
        let duration = reader.integer("duration_minutes", range: 1...1440)
        var address: Address?
        if let addressObject = reader.object("address") {
            var inner = FieldReader(addressObject, prefix: "address.", allowed: addressFields)
            let street = inner.string("street", lengths: 1...200)
            let city = inner.string("city", lengths: 1...100)
            let state = inner.string("state", lengths: 0...100, optional: true)
            var country: String?
            if let name = inner.string("country", lengths: 1...100) {
                country = countries.alpha2(for: name)
                if country == nil { inner.fail("country", "unknown country '\(name)'") }
            }
            reader.merge(inner)
            if let street, let city, let country {
                address = Address(street: street, city: city, state: state, country: country)
            }
        }
        var email: String?
        if let text = reader.string("requested_by", lengths: 1...254) {
            if EmailAddress.isValid(text) { email = text } else { reader.fail("requested_by", "must be an e-mail address") }
        }
        guard reader.errors.isEmpty, let topic, let eventTime, let duration, let address, let email else {
            throw .invalid(reader.errors)
        }
        return NewBooking(topic: topic, eventTime: eventTime, durationMinutes: duration, address: address, requestedBy: email)
    }

    static func cancellation(_ body: [String: JSONValue]) throws(ProblemError) -> String? {
        var reader = FieldReader(body, allowed: ["note"])
        let note = reader.string("note", lengths: 0...2000, optional: true)
        guard reader.errors.isEmpty else { throw .invalid(reader.errors) }
        return note
    }

    static let decisionFields: Set<String> = ["id", "note"]

    static func decision(_ body: [String: JSONValue]) throws(ProblemError) -> (id: Int64, note: String?) {
        var reader = FieldReader(body, allowed: decisionFields)
        let id = reader.integer("id", range: 1...Int(Int64.max >> 12))
        let note = reader.string("note", lengths: 0...2000, optional: true)
        guard reader.errors.isEmpty, let id else { throw .invalid(reader.errors) }
        return (Int64(id), note)
    }
}

/// RFC 3339 date-times, parsed by hand: Foundation's parsers roll impossible dates over
/// (`2027-02-30` became March 2nd) and accept years past 9999. Here every field is checked
/// against the calendar, an offset is required, fractions are kept to the microsecond (what
/// PostgreSQL stores), and the instant must fall in years 0001–9999 in UTC.
enum RFC3339 {
    static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int? {
            guard index + digits <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + digits] {
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            index += digits
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
            expect("Tt "), let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2)
        else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        var microseconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            var fraction = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                if digits < 6 { fraction = fraction * 10 + Int(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard (1...9).contains(digits) else { return nil }
            for _ in digits..<6 { fraction *= 10 }
            microseconds = fraction
        }
        var offsetSeconds = 0
        if expect("Zz") {
            offsetSeconds = 0
        } else if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let offsetHours = number(2), expect(":"), let offsetMinutes = number(2),
                (0...23).contains(offsetHours), (0...59).contains(offsetMinutes)
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        // 0001-01-01T00:00:00Z ... 9999-12-31T23:59:59.999999Z
        guard seconds >= -62_135_596_800, seconds <= 253_402_300_799 else { return nil }
        return Date(timeIntervalSince1970: Double(seconds) + Double(microseconds) / 1_000_000)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

enum EmailAddress {
    // Built once: a union of character sets per call was most of this check's cost.
    private static let allowedLocal = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "!#$%&'*+/=?^_`{|}~.-"))
    private static let allowedDomain = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-"))

    /// A practical check (RFC 5321 sizes, one @, a dotted domain of letters, digits and hyphens);
    /// deliverability is the mail system's business.
    static func isValid(_ text: String) -> Bool {
        guard text.utf8.count <= 254, !text.contains(where: { $0.isWhitespace }) else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...64).contains(parts[0].utf8.count), !parts[1].isEmpty else { return false }
        let local = parts[0]
        guard local.unicodeScalars.allSatisfy({ allowedLocal.contains($0) }), !local.hasPrefix("."), !local.hasSuffix("."),
            !local.contains("..")
        else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { allowedDomain.contains($0) }
        } && labels.last!.count >= 2
    }
}
