import Foundation
import Logging
import PostgresNIO

/// Who did something, for the audit trail: a user (by username) or a program
/// (`manage-passwords`), and the request it came with.
public struct AuditActor: Sendable {
    public let name: String
    public let userID: Int64?
    public let requestID: String?

    public init(name: String, userID: Int64?, requestID: String?) {
        self.name = name
        self.userID = userID
        self.requestID = requestID
    }

    public static let managePasswords = AuditActor(name: "manage-passwords", userID: nil, requestID: nil)
}

/// Writes `audit_events`, always on the connection (and so in the transaction) of the change it
/// records: no change without its record.
enum Audit {
    enum Target: String, Sendable {
        case user, booking, webhook
        case calendarFeed = "calendar_feed"
    }

    static func record(
        _ action: String, target: Target, id: Int64?, actor: AuditActor, note: String? = nil,
        on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await drain(
            """
            INSERT INTO audit_events (actor, action, target_type, target_id, note, request_id)
            VALUES (\(actor.name), \(action), \(target.rawValue), \(id), \(note), \(actor.requestID))
            """,
            on: connection, logger: logger
        )
    }
}

/// One row of `GET /audit`.
public struct AuditEvent: Sendable, Codable, Equatable {
    public let id: Int64
    public let at: Date
    public let actor: String
    public let action: String
    public let target_type: String
    public let target_id: Int64?
    public let note: String?
    public let request_id: String?

    // Nulls are written, not omitted: every field is always present.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(at, forKey: .at)
        try container.encode(actor, forKey: .actor)
        try container.encode(action, forKey: .action)
        try container.encode(target_type, forKey: .target_type)
        try container.encode(target_id, forKey: .target_id)
        try container.encode(note, forKey: .note)
        try container.encode(request_id, forKey: .request_id)
    }
}

public struct AuditFilter: Sendable {
    public var actor: String?
    public var action: String?
    public var targetType: String?
    public var from: Date?
    public var to: Date?
    public var limit = 50
    /// Keyset: the page starts strictly after this (at, id).
    public var after: (at: Date, id: Int64)?
}

struct AuditStore: Sendable {
    let database: Database

    func list(_ filter: AuditFilter, logger: Logger) async throws -> (events: [AuditEvent], next: (Date, Int64)?) {
        var events: [AuditEvent] = try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                SELECT id, at, actor, action, target_type, target_id, note, request_id FROM audit_events
                WHERE (\(filter.actor)::text IS NULL OR actor = \(filter.actor))
                  AND (\(filter.action)::text IS NULL OR action = \(filter.action))
                  AND (\(filter.targetType)::text IS NULL OR target_type = \(filter.targetType))
                  AND (\(filter.from)::timestamptz IS NULL OR at >= \(filter.from))
                  AND (\(filter.to)::timestamptz IS NULL OR at < \(filter.to))
                  AND (\(filter.after?.at)::timestamptz IS NULL OR (at, id) < (\(filter.after?.at)::timestamptz, \(filter.after?.id)))
                ORDER BY at DESC, id DESC
                LIMIT \(filter.limit + 1)
                """,
                logger: logger
            )
            var events: [AuditEvent] = []
            for try await (id, at, actor, action, type, target, note, request) in rows.decode((Int64, Date, String, String, String, Int64?, String?, String?).self) {
                events.append(AuditEvent(id: id, at: at, actor: actor, action: action, target_type: type, target_id: target, note: note, request_id: request))
            }
            return events
        }
        var next: (Date, Int64)?
        if events.count > filter.limit {
            events.removeLast()
            if let last = events.last { next = (last.at, last.id) }
        }
        return (events, next)
    }
}
