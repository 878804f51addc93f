import Foundation
import Logging
import PostgresNIO

public struct PostgresBookingStore: BookingStore {
    let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Transaction-level advisory lock that serialises accepts ("accept" in ASCII).
    static let acceptLockKey: Int64 = 0x61_63_63_65_70_74

    // Column list shared by every query that returns bookings; a constant, never a value.
    // `expired` is computed here, from the transaction's clock: a pending booking whose event
    // has started. Moves are guarded by the statement's clock (`clock_timestamp()`), which is
    // never earlier, so a booking a move returns is never one this reads as expired.
    static let columns = """
        id, topic, event_time, duration_minutes, street, city, state, country, requested_by,
        CASE WHEN status = 'pending' AND event_time <= now() THEN 'expired' ELSE status END AS status,
        status_changes + CASE WHEN status = 'pending' AND event_time <= now() THEN 1 ELSE 0 END AS status_changes,
        submitted_by, submitter_id, decided_by, decided_at, decision_note, created_at, updated_at
        """

    public func submit(_ new: NewBooking, by actor: Actor, idempotency: (key: String, requestHash: String)?, logger: Logger) async throws -> SubmitResult {
        try await database.transaction(logger: logger) { connection in
            if let idempotency {
                // Serialise requests that share a key, then look for an earlier answer.
                try await drain(
                    "SELECT pg_advisory_xact_lock(hashtextextended(\(String(actor.id)) || ':' || \(idempotency.key), 0))",
                    on: connection, logger: logger
                )
                let rows = try await connection.collect(
                    "SELECT request_hash, booking_id FROM idempotency_keys WHERE user_id = \(actor.id) AND key = \(idempotency.key)",
                    logger: logger
                )
                for try await (hash, bookingID) in rows.decode((String, Int64).self) {
                    guard hash == idempotency.requestHash else { throw BookingStoreError.idempotencyKeyReused }
                    guard let existing = try await Self.fetch(id: bookingID, on: connection, logger: logger) else {
                        throw BookingStoreError.idempotentBookingDeleted(bookingID)
                    }
                    return SubmitResult(booking: existing.booking, replayed: true)
                }
            }
            let inserted = try await PreparedQueries.shared.rows(
                Self.insertSQL,
                [
                    PostgresData(string: new.topic), PostgresData(date: new.eventTime), PostgresData(int64: Int64(new.durationMinutes)),
                    PostgresData(string: new.address.street), PostgresData(string: new.address.city), PostgresData(text: new.address.state),
                    PostgresData(string: new.address.country), PostgresData(string: new.requestedBy), PostgresData(string: actor.username),
                    PostgresData(int64: actor.id),
                ],
                on: connection
            )
            guard let row = inserted.first else { throw PostgresStoreError.noRow }
            let booking = try Self.decode(row, fromPreparedQuery: true).booking
            try await Self.record(booking, "submit", actor: actor, note: nil, on: connection, logger: logger)
            if let idempotency {
                try await drain(
                    """
                    INSERT INTO idempotency_keys (user_id, key, request_hash, booking_id)
                    VALUES (\(actor.id), \(idempotency.key), \(idempotency.requestHash), \(booking.id))
                    """,
                    on: connection, logger: logger
                )
            }
            return SubmitResult(booking: booking, replayed: false)
        }
    }

    public func list(_ filter: BookingFilter, logger: Logger) async throws -> (bookings: [Booking], next: BookingCursor?) {
        let statement = Self.listStatement(filter)
        var page: [Booking] = try await database.withConnection(logger: logger) { connection in
            try await PreparedQueries.shared.rows(statement.sql, statement.binds, on: connection).map { try Self.decode($0, fromPreparedQuery: true).booking }
        }
        var next: BookingCursor?
        if page.count > filter.limit {
            page.removeLast()
            if let last = page.last {
                next = BookingCursor(order: filter.order, at: filter.order == .created ? last.createdAt : last.eventTime, id: last.id)
            }
        }
        return (page, next)
    }

    /// The list statement for a filter: one SQL text per combination of the filters present (each
    /// prepared once per connection, so its plan never carries a switched-off branch), with every
    /// value bound. Keyset pagination on (sort key, id): a page starts strictly after the previous
    /// one, so concurrent inserts never shift it. The cursor's instant is rebuilt from whole
    /// microseconds by integer interval arithmetic, so it is exact.
    static func listStatement(_ filter: BookingFilter) -> (sql: String, binds: [PostgresData]) {
        var binds: [PostgresData] = []
        func bind(_ value: PostgresData) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        // The order's column, direction and keyset comparison: constants chosen by the enum.
        let (key, direction, beyond) = filter.order == .created ? ("created_at", "DESC", "<") : ("event_time", "ASC", ">")
        var conditions: [String] = []
        if let submitterID = filter.submitterID { conditions.append("submitter_id = \(bind(PostgresData(int64: submitterID)))::bigint") }
        if let status = filter.storedStatus { conditions.append("status = \(bind(PostgresData(string: status)))::text") }
        if let started = filter.started { conditions.append("(event_time <= now()) = \(bind(PostgresData(bool: started)))::boolean") }
        if let from = filter.from { conditions.append("event_time >= \(bind(PostgresData(date: from)))::timestamptz") }
        if let to = filter.to { conditions.append("event_time < \(bind(PostgresData(date: to)))::timestamptz") }
        if let after = filter.after {
            let instant = bind(PostgresData(int64: after.microseconds))
            let id = bind(PostgresData(int64: after.id))
            conditions.append("(\(key), id) \(beyond) (timestamptz 'epoch' + \(instant)::bigint * interval '1 microsecond', \(id)::bigint)")
        }
        let limit = bind(PostgresData(int64: Int64(filter.limit + 1)))
        let sql = """
            SELECT \(columns) FROM bookings\(conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            ORDER BY \(key) \(direction), id \(direction) LIMIT \(limit)::bigint
            """
        return (sql, binds)
    }

    public func get(id: Int64, logger: Logger) async throws -> (booking: Booking, submitterID: Int64)? {
        try await database.withConnection(logger: logger) { connection in
            try await Self.fetch(id: id, on: connection, logger: logger).map { ($0.booking, $0.submitterID) }
        }
    }

    public func decide(id: Int64, _ decision: Decision, note: String?, by actor: Actor, logger: Logger) async throws -> Booking {
        do {
            return try await database.transaction(logger: logger) { connection in
                if decision == .accept {
                    // Accepts take one lock first, so two overlapping accepts queue rather than
                    // each waiting on the other's row in the exclusion constraint (a deadlock).
                    try await drain("SELECT pg_advisory_xact_lock(\(Self.acceptLockKey))", on: connection, logger: logger)
                }
                // Only a pending booking whose event has not started moves; of two concurrent
                // moves the second finds the row changed (PostgreSQL re-checks the WHERE on the
                // row the first committed) and moves nothing.
                let rows = try await connection.collect(
                    """
                    UPDATE bookings SET status = \(decision.status.rawValue), decided_by = \(actor.username),
                        decided_at = clock_timestamp(), decision_note = \(note), updated_at = clock_timestamp(),
                        status_changes = status_changes + 1
                    WHERE id = \(id) AND status = 'pending' AND event_time > clock_timestamp()
                    RETURNING \(unescaped: Self.columns)
                    """,
                    logger: logger
                )
                guard let booking = try await Self.first(rows)?.booking else {
                    guard let current = try await Self.fetch(id: id, on: connection, logger: logger) else {
                        throw BookingStoreError.notFound
                    }
                    // Still stored as pending, so refused by the clock: it expired, perhaps
                    // after this transaction began.
                    let status = current.booking.status == .pending ? .expired : current.booking.status
                    throw BookingStoreError.notPending(status)
                }
                try await Self.record(booking, decision.rawValue, actor: actor, note: note, on: connection, logger: logger)
                return booking
            }
        } catch DatabaseError.constraint(sqlState: "23P01", _) {
            // bookings_no_overlap refused it: name the accepted booking in the way.
            throw BookingStoreError.overlaps(try await conflictingBooking(for: id, logger: logger) ?? 0)
        }
    }

    public func cancel(id: Int64, note: String?, by actor: Actor, onlySubmitter: Int64?, logger: Logger) async throws -> Booking {
        try await database.transaction(logger: logger) { connection in
            // Pending or accepted, its event not started: the same clock guard as accepting, so
            // a cancel racing an accept ends as one of the two orders, never as both refused.
            let rows = try await connection.collect(
                """
                UPDATE bookings SET status = 'cancelled', decided_by = \(actor.username),
                    decided_at = clock_timestamp(), decision_note = \(note), updated_at = clock_timestamp(),
                    status_changes = status_changes + 1
                WHERE id = \(id) AND (\(onlySubmitter)::bigint IS NULL OR submitter_id = \(onlySubmitter))
                  AND status IN ('pending', 'accepted') AND event_time > clock_timestamp()
                RETURNING \(unescaped: Self.columns)
                """,
                logger: logger
            )
            guard let booking = try await Self.first(rows)?.booking else {
                guard let current = try await Self.fetch(id: id, on: connection, logger: logger),
                    onlySubmitter == nil || current.submitterID == onlySubmitter
                else {
                    throw BookingStoreError.notFound
                }
                switch current.booking.status {
                case .pending, .expired: throw BookingStoreError.notCancellable(.expired)
                case let status: throw BookingStoreError.notCancellable(status)
                }
            }
            try await Self.record(booking, "cancel", actor: actor, note: note, on: connection, logger: logger)
            return booking
        }
    }

    public func availability(from: Date, to: Date, logger: Logger) async throws -> [BusyRange] {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(Self.availabilityQuery(from: from, to: to), logger: logger)
            var ranges: [BusyRange] = []
            for try await (start, end) in rows.decode((Date, Date).self) {
                ranges.append(BusyRange(start: start, end: end))
            }
            return ranges
        }
    }

    /// range_agg merges overlapping and touching periods (a multirange is kept normalised); the
    /// && test is answered by the exclusion constraint's GiST index (AvailabilityTests checks).
    static func availabilityQuery(from: Date, to: Date) -> PostgresQuery {
        """
        SELECT lower(busy), upper(busy) FROM unnest((
            SELECT range_agg(booking_period(event_time, duration_minutes) * tstzrange(\(from), \(to), '[)'))
            FROM bookings
            WHERE status = 'accepted'
              AND booking_period(event_time, duration_minutes) && tstzrange(\(from), \(to), '[)')
        )) AS busy
        ORDER BY 1
        """
    }

    private func conflictingBooking(for id: Int64, logger: Logger) async throws -> Int64? {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
            """
            SELECT other.id FROM bookings AS other, bookings AS this
            WHERE this.id = \(id) AND other.status = 'accepted' AND other.id <> this.id
              AND booking_period(other.event_time, other.duration_minutes) && booking_period(this.event_time, this.duration_minutes)
            ORDER BY other.id LIMIT 1
            """,
                logger: logger
            )
            for try await otherID in rows.decode(Int64.self) { return otherID }
            return nil
        }
    }

    public func delete(id: Int64, by actor: Actor, logger: Logger) async throws -> Booking {
        try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect(
                "DELETE FROM bookings WHERE id = \(id) RETURNING \(unescaped: Self.columns)",
                logger: logger
            )
            guard let booking = try await Self.first(rows)?.booking else { throw BookingStoreError.notFound }
            try await Self.record(booking, "delete", actor: actor, note: nil, on: connection, logger: logger)
            return booking
        }
    }

    public func history(id: Int64, logger: Logger) async throws -> [BookingEvent] {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                "SELECT action, actor, at, note FROM booking_events WHERE booking_id = \(id) ORDER BY id",
                logger: logger
            )
            var events: [BookingEvent] = []
            for try await (action, actor, at, note) in rows.decode((String, String, Date, String?).self) {
                events.append(BookingEvent(action: action, actor: actor, at: at, note: note))
            }
            // Expiry is not stored; it is part of the history all the same, at the event's start.
            if let current = try await Self.fetch(id: id, on: connection, logger: logger), current.booking.status == .expired {
                events.append(BookingEvent(action: "expire", actor: "system", at: current.booking.eventTime, note: nil))
            }
            return events
        }
    }

    // MARK: - Helpers

    /// Each action's audit name, which is also its webhook event type.
    static let events: [String: WebhookEventType] = [
        "submit": .bookingSubmitted, "accept": .bookingAccepted, "reject": .bookingRejected,
        "cancel": .bookingCancelled, "delete": .bookingDeleted,
    ]

    /// History, audit trail and webhook outbox, on the change's own connection and transaction.
    static func record(_ booking: Booking, _ action: String, actor: Actor, note: String?, on connection: PostgresConnection, logger: Logger) async throws {
        guard let event = events[action] else { preconditionFailure("unknown booking action \(action)") }
        // The audit row, the booking's history row and the outbox event in one round trip (the
        // outbox's fan-out trigger runs as before).
        var data: [UInt8] = []
        data.reserveCapacity(512)
        BookingJSON.write(booking, into: &data)
        let audit = actor.audit
        _ = try await PreparedQueries.shared.rows(
            recordSQL,
            [
                PostgresData(string: audit.name), PostgresData(string: event.rawValue), PostgresData(string: Audit.Target.booking.rawValue),
                PostgresData(int64: booking.id), PostgresData(text: note), PostgresData(text: audit.requestID), PostgresData(string: action),
                PostgresData(string: actor.username), PostgresData(int64: actor.id), PostgresData(string: String(decoding: data, as: UTF8.self)),
            ],
            on: connection
        )
    }

    /// A submission's row; prepared once per connection, as is `recordSQL`.
    static let insertSQL = """
        INSERT INTO bookings (topic, event_time, duration_minutes, street, city, state, country, requested_by, submitted_by, submitter_id)
        VALUES ($1::text, $2::timestamptz, $3::bigint, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::bigint)
        RETURNING \(columns)
        """

    /// The audit row, the booking's history row and the outbox event of a change.
    static let recordSQL = """
        WITH audit AS (
            INSERT INTO audit_events (actor, action, target_type, target_id, note, request_id)
            VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::text, $6::text)
        ), history AS (
            INSERT INTO booking_events (booking_id, action, actor, actor_id, note)
            VALUES ($4::bigint, $7::text, $8::text, $9::bigint, $5::text)
        )
        INSERT INTO webhook_events (type, data) VALUES ($2::text, $10::text)
        """

    static func fetch(id: Int64, on connection: PostgresConnection, logger: Logger) async throws -> (booking: Booking, submitterID: Int64)? {
        try await connection.single(ByID(id: id), logger: logger)
    }

    /// One booking by id, the hottest read: prepared once per connection.
    struct ByID: PostgresPreparedStatement {
        static let sql = "SELECT \(PostgresBookingStore.columns) FROM bookings WHERE id = $1"
        // A fixed name: the default, `String(reflecting:)` of the type, is built on every execution.
        static let name = "booking_by_id"
        typealias Row = (booking: Booking, submitterID: Int64)
        let id: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(id)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try PostgresBookingStore.decode(row) }
    }

    static func first(_ rows: CollectedRows) async throws -> (booking: Booking, submitterID: Int64)? {
        var result: (booking: Booking, submitterID: Int64)?
        for try await row in rows where result == nil {
            result = try decode(row)
        }
        return result
    }

    /// A row of `columns`, read by position in that order: looking every column up by name was
    /// ~8 % of a 50-row list's CPU. Debug builds (the tests) check each column's name.
    static func decode(_ row: PostgresRow, fromPreparedQuery: Bool = false) throws -> (booking: Booking, submitterID: Int64) {
        var cells = OrderedCells(row, fromPreparedQuery: fromPreparedQuery)
        let id = try cells.next("id", Int64.self)
        let topic = try cells.next("topic", String.self)
        let eventTime = try cells.next("event_time", Date.self)
        let durationMinutes = try cells.next("duration_minutes", Int.self)
        let street = try cells.next("street", String.self)
        let city = try cells.next("city", String.self)
        let state = try cells.next("state", String?.self)
        let country = try cells.next("country", String.self)
        let requestedBy = try cells.next("requested_by", String.self)
        let status = try cells.next("status", String.self)
        let statusChanges = try cells.next("status_changes", Int.self)
        let submittedBy = try cells.next("submitted_by", String.self)
        let submitterID = try cells.next("submitter_id", Int64.self)
        let decidedBy = try cells.next("decided_by", String?.self)
        let decidedAt = try cells.next("decided_at", Date?.self)
        let decisionNote = try cells.next("decision_note", String?.self)
        let createdAt = try cells.next("created_at", Date.self)
        let updatedAt = try cells.next("updated_at", Date.self)
        let booking = Booking(
            id: id, topic: topic, eventTime: eventTime, durationMinutes: durationMinutes,
            address: Address(street: street, city: city, state: state, country: country),
            requestedBy: requestedBy, status: BookingStatus(rawValue: status) ?? .pending, submittedBy: submittedBy,
            decidedBy: decidedBy, decidedAt: decidedAt, decisionNote: decisionNote,
            createdAt: createdAt, updatedAt: updatedAt, statusChanges: statusChanges
        )
        return (booking, submitterID)
    }
}

extension PostgresData {
    /// Text or NULL, for `PreparedQueries`.
    init(text: String?) {
        if let text { self.init(string: text) } else { self.init(type: .text, value: nil) }
    }
}

/// A row's cells in the statement's order.
struct OrderedCells {
    struct Missing: Error { let column: String }
    private var iterator: PostgresRow.Iterator
    private let binary: Bool

    /// A row from `PreparedQueries` is binary whatever its description says: postgres-nio
    /// 1.33.2's older prepared path binds every result column as binary but keeps the statement
    /// description's text format codes (`PreparedQueriesTests` checks).
    init(_ row: PostgresRow, fromPreparedQuery: Bool = false) {
        iterator = row.makeIterator()
        binary = fromPreparedQuery
    }

    mutating func next<Value: PostgresDecodable>(_ column: String, _ type: Value.Type) throws -> Value {
        guard var cell = iterator.next() else { throw Missing(column: column) }
        assert(cell.columnName == column, "expected column \(column), found \(cell.columnName)")
        if binary { cell.format = .binary }
        return try cell.decode(Value.self)
    }
}
