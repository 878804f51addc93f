import Foundation
import Hummingbird

public enum BookingStatus: String, Sendable, Codable, CaseIterable {
    case pending, accepted, rejected, cancelled
    /// Never stored: a pending booking whose event has started reads as this.
    case expired
}

public struct Address: Sendable, Codable, Equatable {
    public var street: String
    public var city: String
    public var state: String?
    public var country: String

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(street, forKey: .street)
        try container.encode(city, forKey: .city)
        try container.encode(state, forKey: .state)  // null, not absent
        try container.encode(country, forKey: .country)
    }
}

/// A stored booking as the API returns it.
public struct Booking: Sendable, Codable, Equatable, ResponseGenerator {
    public let id: Int64
    public let topic: String
    public let eventTime: Date
    public let durationMinutes: Int
    public let address: Address
    public let requestedBy: String
    public let status: BookingStatus
    public let submittedBy: String
    public let decidedBy: String?
    public let decidedAt: Date?
    public let decisionNote: String?
    public let createdAt: Date
    public let updatedAt: Date
    /// How many times its status changed, expiry included: the iCalendar SEQUENCE. Not in JSON.
    public var statusChanges: Int = 0

    enum CodingKeys: String, CodingKey {
        case id, topic, address, status
        case eventTime = "event_time"
        case durationMinutes = "duration_minutes"
        case requestedBy = "requested_by"
        case submittedBy = "submitted_by"
        case decidedBy = "decided_by"
        case decidedAt = "decided_at"
        case decisionNote = "decision_note"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        BookingJSON.response(BookingJSON.booking(self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(topic, forKey: .topic)
        try container.encode(eventTime, forKey: .eventTime)
        try container.encode(durationMinutes, forKey: .durationMinutes)
        try container.encode(address, forKey: .address)
        try container.encode(requestedBy, forKey: .requestedBy)
        try container.encode(status, forKey: .status)
        try container.encode(submittedBy, forKey: .submittedBy)
        try container.encode(decidedBy, forKey: .decidedBy)
        try container.encode(decidedAt, forKey: .decidedAt)
        try container.encode(decisionNote, forKey: .decisionNote)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

/// A validated submission, ready to store.
public struct NewBooking: Sendable, Equatable {
    public var topic: String
    public var eventTime: Date
    public var durationMinutes: Int
    public var address: Address
    public var requestedBy: String
}

/// One line of a booking's history.
public struct BookingEvent: Sendable, Codable, Equatable {
    public let action: String
    public let actor: String
    public let at: Date
    public let note: String?

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(action, forKey: .action)
        try container.encode(actor, forKey: .actor)
        try container.encode(at, forKey: .at)
        try container.encode(note, forKey: .note)
    }
}
