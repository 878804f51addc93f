import Foundation
import Logging
import PostgresNIO

/// A calendar feed as admins see it: never its secret.
public struct CalendarFeed: Sendable, Codable, Equatable {
    public let id: Int64
    public let name: String
    public let created_by: String
    public let created_at: Date
}

/// Secret-URL calendar feeds. The secret (256 random bits, base64url) is shown once; only its
/// SHA-256 is stored, and a feed is found by that hash.
struct CalendarFeedStore: Sendable {
    let database: Database

    /// Feeds list bookings whose event is at most this old.
    static let lookBack = "30 days"

    func create(name: String, by actor: Actor, logger: Logger) async throws -> (feed: CalendarFeed, secret: String) {
        let (secret, hash) = SessionStore.newToken()
        return try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                INSERT INTO calendar_feeds (name, secret_hash, created_by, created_by_id)
                VALUES (\(name), \(hash), \(actor.username), \(actor.id))
                RETURNING id, name, created_by, created_at
                """,
                logger: logger
            )
            var created: CalendarFeed?
            for try await (id, name, by, at) in rows.decode((Int64, String, String, Date).self) {
                created = CalendarFeed(id: id, name: name, created_by: by, created_at: at)
            }
            guard let created else { throw PostgresStoreError.noRow }
            try await Audit.record("calendar_feed.created", target: .calendarFeed, id: created.id, actor: actor.audit, note: name, on: connection, logger: logger)
            return (created, secret)
        }
    }

    func list(logger: Logger) async throws -> [CalendarFeed] {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect("SELECT id, name, created_by, created_at FROM calendar_feeds ORDER BY id", logger: logger)
            var feeds: [CalendarFeed] = []
            for try await (id, name, by, at) in rows.decode((Int64, String, String, Date).self) {
                feeds.append(CalendarFeed(id: id, name: name, created_by: by, created_at: at))
            }
            return feeds
        }
    }

    /// Removes the feed, so its URL answers 404 from the next request on. False if there was none.
    func revoke(id: Int64, by actor: Actor, logger: Logger) async throws -> Bool {
        try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect("DELETE FROM calendar_feeds WHERE id = \(id) RETURNING name", logger: logger)
            var name: String?
            for try await value in rows.decode(String.self) { name = value }
            guard let name else { return false }
            try await Audit.record("calendar_feed.revoked", target: .calendarFeed, id: id, actor: actor.audit, note: name, on: connection, logger: logger)
            return true
        }
    }

    /// The feed's name and its bookings (accepted, and pending ones not yet expired, from 30 days
    /// ago on, in event order), or nil when no feed has this secret.
    func bookings(secret: String, logger: Logger) async throws -> (name: String, bookings: [Booking])? {
        let hash = SessionStore.hash(secret)
        return try await database.withConnection(logger: logger) { connection in
            var name: String?
            for try await value in try await connection.collect("SELECT name FROM calendar_feeds WHERE secret_hash = \(hash)", logger: logger).decode(String.self) {
                name = value
            }
            guard let name else { return nil }
            let rows = try await connection.collect(
                """
                SELECT \(unescaped: PostgresBookingStore.columns) FROM bookings
                WHERE status IN ('pending', 'accepted')
                  AND event_time >= now() - interval '\(unescaped: Self.lookBack)'
                  AND NOT (status = 'pending' AND event_time <= now())
                ORDER BY event_time, id
                """,
                logger: logger
            )
            var bookings: [Booking] = []
            for try await row in rows { bookings.append(try PostgresBookingStore.decode(row).booking) }
            return (name, bookings)
        }
    }
}
