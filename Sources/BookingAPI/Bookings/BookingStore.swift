import Foundation
import Logging

/// Who is acting, as the store records it.
public struct Actor: Sendable {
    public let id: Int64
    public let username: String
    /// The request that acts, for the audit trail.
    public var requestID: String? = nil

    var audit: AuditActor { AuditActor(name: username, userID: id, requestID: requestID) }
}

public struct BookingFilter: Sendable, Equatable {
    public var submitterID: Int64?
    public var status: BookingStatus?
    public var from: Date?
    public var to: Date?
    public var order: BookingOrder = .created
    public var after: BookingCursor?
    public var limit: Int = 50

    /// The stored status that `status` reads from (`expired` is a pending booking...).
    var storedStatus: String? { status.map { $0 == .expired ? BookingStatus.pending.rawValue : $0.rawValue } }
    /// ...whose event has started; `pending` means one whose event has not.
    var started: Bool? {
        switch status {
        case .pending: false
        case .expired: true
        default: nil
        }
    }
}

/// A time range during which the calendar is taken.
public struct BusyRange: Sendable, Equatable {
    public let start: Date
    public let end: Date
}

public enum Decision: String, Sendable {
    case accept, reject

    var status: BookingStatus { self == .accept ? .accepted : .rejected }
}

/// Why a booking change was refused.
public enum BookingStoreError: Error, Equatable {
    case notFound
    case notPending(BookingStatus)
    /// Rejected, cancelled, expired, or (`accepted`) accepted with its event started.
    case notCancellable(BookingStatus)
    case overlaps(Int64)
    case idempotencyKeyReused
    /// The booking that an Idempotency-Key created has been deleted since.
    case idempotentBookingDeleted(Int64)
}

public struct SubmitResult: Sendable {
    public let booking: Booking
    /// True when an Idempotency-Key retry returned the first request's booking.
    public let replayed: Bool
}

public protocol BookingStore: Sendable {
    func submit(_ booking: NewBooking, by actor: Actor, idempotency: (key: String, requestHash: String)?, logger: Logger) async throws -> SubmitResult
    func list(_ filter: BookingFilter, logger: Logger) async throws -> (bookings: [Booking], next: BookingCursor?)
    func get(id: Int64, logger: Logger) async throws -> (booking: Booking, submitterID: Int64)?
    func decide(id: Int64, _ decision: Decision, note: String?, by actor: Actor, logger: Logger) async throws -> Booking
    func delete(id: Int64, by actor: Actor, logger: Logger) async throws -> Booking
    /// `onlySubmitter`: a requester may cancel only what they submitted (anything else is `notFound`).
    func cancel(id: Int64, note: String?, by actor: Actor, onlySubmitter: Int64?, logger: Logger) async throws -> Booking
    func availability(from: Date, to: Date, logger: Logger) async throws -> [BusyRange]
    func history(id: Int64, logger: Logger) async throws -> [BookingEvent]
}

/// The order of a booking list: newest submitted first (the default), or by event time, earliest
/// first (a moderation queue: the most urgent decision on top).
public enum BookingOrder: String, Sendable {
    case created = "created_at"
    case eventTime = "event_time"
}

/// Position after the last booking of a page: the order it belongs to, the sort key in whole
/// microseconds since 1970 (PostgreSQL's precision, computed in Swift) and the id.
public struct BookingCursor: Sendable, Equatable {
    let order: BookingOrder
    let microseconds: Int64
    let id: Int64

    var token: String {
        Data("\(order == .created ? "c" : "e")\(microseconds)|\(id)".utf8).base64URLEncoded()
    }

    init(order: BookingOrder, at date: Date, id: Int64) {
        self.order = order
        // Rounded: the Date postgres-nio decodes is within a fraction of a microsecond.
        self.microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        self.id = id
    }

    init?(token: String) {
        guard token.count <= 200, let data = Data(base64URL: token), let text = String(data: data, encoding: .utf8),
            let kind = text.first
        else { return nil }
        let parts = text.dropFirst().split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 2, let microseconds = Int64(parts[0]), let id = Int64(parts[1]) else { return nil }
        switch kind {
        case "c": order = .created
        case "e": order = .eventTime
        default: return nil
        }
        self.microseconds = microseconds
        self.id = id
    }
}
