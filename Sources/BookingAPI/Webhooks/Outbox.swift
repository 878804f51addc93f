import Foundation
import Logging
import PostgresNIO

/// The webhook events a change reports (API.md, "Webhooks").
public enum WebhookEventType: String, Sendable, CaseIterable, Codable {
    case bookingSubmitted = "booking.submitted"
    case bookingAccepted = "booking.accepted"
    case bookingRejected = "booking.rejected"
    case bookingCancelled = "booking.cancelled"
    case bookingExpired = "booking.expired"
    case bookingDeleted = "booking.deleted"
    case userCreated = "user.created"
    case userUpdated = "user.updated"
    case webhookPing = "webhook.ping"
}

/// The transactional outbox: an event row written on the connection, and so in the transaction,
/// of the change it reports. Rolled back with the change, committed with it; a trigger notifies
/// `webhook_events` at commit so that dispatchers wake at once.
enum Outbox {
    /// `data` is the booking or user exactly as the API shows it; it is stored as sent, so the
    /// bytes a receiver verifies are the bytes written here.
    static func record(_ type: WebhookEventType, data: [UInt8], on connection: PostgresConnection, logger: Logger) async throws {
        let text = String(decoding: data, as: UTF8.self)
        try await drain("INSERT INTO webhook_events (type, data) VALUES (\(type.rawValue), \(text))", on: connection, logger: logger)
    }

    static func record(_ type: WebhookEventType, booking: Booking, on connection: PostgresConnection, logger: Logger) async throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512)
        BookingJSON.write(booking, into: &bytes)
        try await record(type, data: bytes, on: connection, logger: logger)
    }

    static func record(_ type: WebhookEventType, user: UserView, on connection: PostgresConnection, logger: Logger) async throws {
        try await record(type, data: Array(try JSONEncoder.bookingAPI.encode(user)), on: connection, logger: logger)
    }
}
