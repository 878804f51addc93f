import Foundation
import Logging
import PostgresNIO

/// A subscription as admins see it: never its secret.
public struct WebhookSubscription: Sendable, Codable, Equatable {
    public let id: Int64
    public let url: String
    public let events: [String]
    public let description: String?
    public let disabled: Bool
    /// `admin`, or `gone` when the receiver answered 410.
    public let disabled_reason: String?
    public let created_by: String
    public let created_at: Date
    public let updated_at: Date

    // Nulls are written, not omitted: every field is always present.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(url, forKey: .url)
        try container.encode(events, forKey: .events)
        try container.encode(description, forKey: .description)
        try container.encode(disabled, forKey: .disabled)
        try container.encode(disabled_reason, forKey: .disabled_reason)
        try container.encode(created_by, forKey: .created_by)
        try container.encode(created_at, forKey: .created_at)
        try container.encode(updated_at, forKey: .updated_at)
    }
}

public struct WebhookAttempt: Sendable, Codable, Equatable {
    public let number: Int
    public let started_at: Date
    public let duration_ms: Int
    public let status: Int?
    public let error: String?

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(number, forKey: .number)
        try container.encode(started_at, forKey: .started_at)
        try container.encode(duration_ms, forKey: .duration_ms)
        try container.encode(status, forKey: .status)
        try container.encode(error, forKey: .error)
    }
}

public struct WebhookDelivery: Sendable, Codable, Equatable {
    public let id: Int64
    public let event_id: String
    public let type: String
    public let state: String
    public let attempts: Int
    public let last_status: Int?
    public let last_error: String?
    public let last_attempt_at: Date?
    /// When it is tried next; null unless pending.
    public let next_attempt_at: Date?
    public let created_at: Date
    /// Only on `GET /webhooks/{id}/deliveries/{delivery_id}`.
    public var attempt_log: [WebhookAttempt]? = nil

    enum CodingKeys: String, CodingKey {
        case id, event_id, type, state, attempts, last_status, last_error, last_attempt_at, next_attempt_at, created_at
        case attempt_log = "attempt_history"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(event_id, forKey: .event_id)
        try container.encode(type, forKey: .type)
        try container.encode(state, forKey: .state)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(last_status, forKey: .last_status)
        try container.encode(last_error, forKey: .last_error)
        try container.encode(last_attempt_at, forKey: .last_attempt_at)
        try container.encode(next_attempt_at, forKey: .next_attempt_at)
        try container.encode(created_at, forKey: .created_at)
        try container.encodeIfPresent(attempt_log, forKey: .attempt_log)
    }
}

enum WebhookStoreError: Error, Equatable {
    case notFound
    case disabled
}

/// Subscriptions and deliveries in PostgreSQL. Every change is audited in its own transaction.
struct WebhookStore: Sendable {
    let database: Database

    /// How long a rotated-out secret keeps signing beside the new one.
    static let rotationOverlap = "24 hours"

    static let columns = "id, url, events, description, disabled, disabled_reason, created_by, created_at, updated_at"

    static func decode(_ row: PostgresRow) throws -> WebhookSubscription {
        let (id, url, events, description, disabled, reason, by, created, updated) =
            try row.decode((Int64, String, [String], String?, Bool, String?, String, Date, Date).self)
        return WebhookSubscription(
            id: id, url: url, events: events, description: description, disabled: disabled, disabled_reason: reason,
            created_by: by, created_at: created, updated_at: updated
        )
    }

    private static func one(_ rows: CollectedRows) async throws -> WebhookSubscription? {
        var found: WebhookSubscription?
        for try await row in rows { found = try decode(row) }
        return found
    }

    func create(url: String, events: [String], description: String?, actor: AuditActor, logger: Logger) async throws -> (WebhookSubscription, String) {
        let (key, text) = WebhookSignature.newSecret()
        let subscription = try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                INSERT INTO webhook_subscriptions (url, events, description, secret, created_by)
                VALUES (\(url), \(events), \(description), \(Data(key)), \(actor.name))
                RETURNING \(unescaped: Self.columns)
                """,
                logger: logger
            )
            guard let created = try await Self.one(rows) else { throw PostgresStoreError.noRow }
            try await Audit.record("webhook.created", target: .webhook, id: created.id, actor: actor, note: url, on: connection, logger: logger)
            return created
        }
        return (subscription, text)
    }

    func list(logger: Logger) async throws -> [WebhookSubscription] {
        try await database.withConnection(logger: logger) { connection in
            var found: [WebhookSubscription] = []
            for try await row in try await connection.collect("SELECT \(unescaped: Self.columns) FROM webhook_subscriptions ORDER BY id", logger: logger) {
                found.append(try Self.decode(row))
            }
            return found
        }
    }

    func get(id: Int64, logger: Logger) async throws -> WebhookSubscription? {
        try await database.withConnection(logger: logger) { connection in
            try await Self.one(try await connection.collect("SELECT \(unescaped: Self.columns) FROM webhook_subscriptions WHERE id = \(id)", logger: logger))
        }
    }

    struct Change: Sendable {
        var url: String?
        var events: [String]?
        /// Present: set (nil clears it). Every optional value is cast: a NULL bind has no type.
        var description: String??
        var disabled: Bool?
    }

    func update(id: Int64, change: Change, actor: AuditActor, logger: Logger) async throws -> WebhookSubscription? {
        // An empty patch changes nothing, so it leaves no audit entry either.
        if change.url == nil, change.events == nil, change.description == nil, change.disabled == nil {
            return try await get(id: id, logger: logger)
        }
        return try await database.transaction(logger: logger) { connection in
            let setsDescription = change.description != nil
            let description = change.description ?? nil
            let rows = try await connection.collect(
                """
                UPDATE webhook_subscriptions SET
                    url = coalesce(\(change.url)::text, url),
                    events = coalesce(\(change.events)::text[], events),
                    description = CASE WHEN \(setsDescription) THEN \(description)::text ELSE description END,
                    disabled = coalesce(\(change.disabled)::boolean, disabled),
                    disabled_reason = CASE
                        WHEN \(change.disabled)::boolean IS NULL THEN disabled_reason
                        WHEN \(change.disabled)::boolean THEN 'admin' ELSE NULL END,
                    updated_at = now()
                WHERE id = \(id)
                RETURNING \(unescaped: Self.columns)
                """,
                logger: logger
            )
            guard let updated = try await Self.one(rows) else { return nil }
            var parts: [String] = []
            if change.url != nil { parts.append("url") }
            if change.events != nil { parts.append("events") }
            if setsDescription { parts.append("description") }
            if let disabled = change.disabled { parts.append(disabled ? "disabled" : "enabled") }
            try await Audit.record("webhook.updated", target: .webhook, id: id, actor: actor, note: parts.joined(separator: ", "), on: connection, logger: logger)
            return updated
        }
    }

    /// Deletes the subscription with its deliveries: nothing more is sent to it.
    func delete(id: Int64, actor: AuditActor, logger: Logger) async throws -> Bool {
        try await database.transaction(logger: logger) { connection in
            var url: String?
            for try await value in try await connection.collect("DELETE FROM webhook_subscriptions WHERE id = \(id) RETURNING url", logger: logger).decode(String.self) {
                url = value
            }
            guard let url else { return false }
            try await Audit.record("webhook.deleted", target: .webhook, id: id, actor: actor, note: url, on: connection, logger: logger)
            return true
        }
    }

    /// A new secret; the current one keeps signing beside it for `rotationOverlap`.
    func rotate(id: Int64, actor: AuditActor, logger: Logger) async throws -> String? {
        let (key, text) = WebhookSignature.newSecret()
        return try await database.transaction(logger: logger) { connection in
            var found = false
            let rows = try await connection.collect(
                """
                UPDATE webhook_subscriptions SET
                    previous_secret = secret, previous_secret_until = now() + interval '\(unescaped: Self.rotationOverlap)',
                    secret = \(Data(key)), updated_at = now()
                WHERE id = \(id) RETURNING id
                """,
                logger: logger
            )
            for try await _ in rows { found = true }
            guard found else { return nil }
            try await Audit.record("webhook.updated", target: .webhook, id: id, actor: actor, note: "secret rotated", on: connection, logger: logger)
            return text
        }
    }

    static let deliveryColumns = """
        d.id, d.event_id, e.type, d.state, d.attempts, d.last_status, d.last_error, d.last_attempt_at,
        CASE WHEN d.state = 'pending' THEN greatest(d.next_attempt_at, d.lease_until) END, d.created_at
        """

    static func decodeDelivery(_ row: PostgresRow) throws -> WebhookDelivery {
        let (id, event, type, state, attempts, status, error, last, next, created) =
            try row.decode((Int64, String, String, String, Int, Int?, String?, Date?, Date?, Date).self)
        return WebhookDelivery(
            id: id, event_id: event, type: type, state: state, attempts: attempts, last_status: status, last_error: error,
            last_attempt_at: last, next_attempt_at: next, created_at: created
        )
    }

    private func exists(_ subscription: Int64, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        var found = false
        for try await _ in try await connection.collect("SELECT 1 FROM webhook_subscriptions WHERE id = \(subscription)", logger: logger) { found = true }
        return found
    }

    /// Newest first, `limit` at a time, after the delivery id `before` (the cursor).
    func deliveries(subscription: Int64, state: String?, limit: Int, before: Int64?, logger: Logger) async throws -> (deliveries: [WebhookDelivery], next: Int64?) {
        try await database.withConnection(logger: logger) { connection in
            guard try await exists(subscription, on: connection, logger: logger) else { throw WebhookStoreError.notFound }
            let rows = try await connection.collect(
                """
                SELECT \(unescaped: Self.deliveryColumns)
                FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
                WHERE d.subscription_id = \(subscription)
                  AND (\(before)::bigint IS NULL OR d.id < \(before))
                  AND (\(state)::text IS NULL OR d.state = \(state))
                ORDER BY d.id DESC
                LIMIT \(limit + 1)
                """,
                logger: logger
            )
            var found: [WebhookDelivery] = []
            for try await row in rows { found.append(try Self.decodeDelivery(row)) }
            guard found.count > limit else { return (found, nil) }
            found.removeLast()
            return (found, found.last?.id)
        }
    }

    /// One delivery with every attempt, oldest first.
    func delivery(subscription: Int64, id: Int64, logger: Logger) async throws -> WebhookDelivery? {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                SELECT \(unescaped: Self.deliveryColumns)
                FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
                WHERE d.subscription_id = \(subscription) AND d.id = \(id)
                """,
                logger: logger
            )
            var found: WebhookDelivery?
            for try await row in rows { found = try Self.decodeDelivery(row) }
            guard var delivery = found else { return nil }
            let attempts = try await connection.collect(
                "SELECT number, started_at, duration_ms, status, error FROM webhook_attempts WHERE delivery_id = \(id) ORDER BY id",
                logger: logger
            )
            var log: [WebhookAttempt] = []
            for try await (number, started, duration, status, error) in attempts.decode((Int, Date, Int, Int?, String?).self) {
                log.append(WebhookAttempt(number: number, started_at: started, duration_ms: duration, status: status, error: error))
            }
            delivery.attempt_log = log
            return delivery
        }
    }

    /// Makes the delivery due now, whatever its state. An attempt in flight finishes first; its
    /// outcome then does not end the delivery (`retry_requested_at`).
    func retry(subscription: Int64, id: Int64, logger: Logger) async throws -> WebhookDelivery? {
        try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                WITH moved AS (
                    UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = clock_timestamp(),
                        retry_requested_at = CASE WHEN lease_until > clock_timestamp() THEN clock_timestamp() END
                    WHERE subscription_id = \(subscription) AND id = \(id)
                    RETURNING *
                )
                SELECT \(unescaped: Self.deliveryColumns) FROM moved d JOIN webhook_events e ON e.id = d.event_id
                """,
                logger: logger
            )
            var found: WebhookDelivery?
            for try await row in rows { found = try Self.decodeDelivery(row) }
            guard let found else { return nil }
            try await drain("SELECT pg_notify('webhook_events', \(found.event_id))", on: connection, logger: logger)
            return found
        }
    }

    /// Queues a `webhook.ping` for this subscription only; its data is the subscription.
    func ping(subscription: Int64, logger: Logger) async throws -> WebhookDelivery {
        try await database.transaction(logger: logger) { connection in
            guard let found = try await Self.one(
                try await connection.collect("SELECT \(unescaped: Self.columns) FROM webhook_subscriptions WHERE id = \(subscription) FOR SHARE", logger: logger)
            ) else {
                throw WebhookStoreError.notFound
            }
            guard !found.disabled else { throw WebhookStoreError.disabled }
            let data = String(decoding: try JSONEncoder.bookingAPI.encode(found), as: UTF8.self)
            let rows = try await connection.collect(
                """
                WITH event AS (
                    INSERT INTO webhook_events (type, data) VALUES ('webhook.ping', \(data)) RETURNING id, type
                ), d AS (
                    INSERT INTO webhook_deliveries (subscription_id, event_id) SELECT \(subscription), id FROM event RETURNING *
                )
                SELECT d.id, d.event_id, e.type, d.state, d.attempts, d.last_status, d.last_error, d.last_attempt_at,
                       d.next_attempt_at, d.created_at
                FROM d JOIN event e ON e.id = d.event_id
                """,
                logger: logger
            )
            var created: WebhookDelivery?
            for try await row in rows { created = try Self.decodeDelivery(row) }
            guard let created else { throw PostgresStoreError.noRow }
            return created
        }
    }
}
