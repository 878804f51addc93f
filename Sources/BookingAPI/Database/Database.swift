import Foundation
import Logging
import Metrics
import PostgresNIO
import Synchronization

/// The one way the service runs statements. It owns leasing, transactions, the deadline, the
/// retry of transient conflicts and the translation of failures into `DatabaseError`; stores
/// only write SQL.
public struct Database: Sendable {
    let pool: DatabasePool
    /// Waiting for a connection and running the statements, together (`DATABASE_TIMEOUT_SECONDS`).
    public let timeout: Duration
    /// Extra attempts after a deadlock or serialization failure.
    var conflictRetries = 3

    init(pool: DatabasePool, timeout: Duration) {
        self.pool = pool
        self.timeout = timeout
    }

    /// Leases a connection for `body`, within the deadline.
    public func withConnection<T: Sendable>(
        logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await guarded(logger: logger) { slot in
            try await self.leased(slot: slot, body)
        }
    }

    /// Runs `body` in a transaction, within the deadline. A deadlock or serialization failure
    /// rolls back and runs `body` again (a bounded number of times, with jitter), so `body`
    /// must do nothing outside the database that it cannot repeat.
    public func transaction<T: Sendable>(
        logger: Logger,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await guarded(logger: logger) { slot in
            var attempt = 0
            while true {
                do {
                    return try await self.leased(slot: slot) { connection in
                        try await drain("BEGIN", on: connection, logger: logger)
                        do {
                            let result = try await body(connection)
                            try await drain("COMMIT", on: connection, logger: logger)
                            return result
                        } catch {
                            try? await drain("ROLLBACK", on: connection, logger: logger)
                            throw error
                        }
                    }
                } catch let error where DatabaseError.isTransientConflict(error) && attempt < self.conflictRetries {
                    attempt += 1
                    DatabaseMetrics.failure(.retriedConflict).increment()
                    logger.debug("transient conflict; retrying", metadata: ["attempt": .stringConvertible(attempt)])
                    try await Task.sleep(for: .milliseconds(Int.random(in: 5...25) * attempt))
                }
            }
        }
    }

    private func leased<T: Sendable>(slot: ConnectionSlot, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let client = pool.client
        slot.count()
        defer { slot.uncount() }
        return try await client.withConnection { connection in
            slot.hold(connection)
            defer { slot.release() }
            return try await body(connection)
        }
    }

    /// The deadline and the translation of failures, around one unit of work.
    private func guarded<T: Sendable>(
        logger: Logger,
        _ work: @escaping @Sendable (ConnectionSlot) async throws -> T
    ) async throws -> T {
        let slot = ConnectionSlot()
        do {
            let pool = self.pool
            return try await withDeadline(timeout, slot: slot, abandoned: { pool.reportLostLease() }) { try await work(slot) }
        } catch is DeadlineExceeded {
            pool.reportFailure()
            DatabaseMetrics.failure(.timeout).increment()
            throw DatabaseError.unavailable(.timeout, reason: "no answer within \(timeout)")
        } catch {
            guard let translated = DatabaseError.translating(error) else { throw error }
            if case .unavailable(let kind, _) = translated {
                if kind != .conflict { pool.reportFailure() }
                DatabaseMetrics.failure(kind == .timeout ? .timeout : kind == .conflict ? .conflict : .unreachable).increment()
            }
            throw translated
        }
    }
}

/// Runs a statement and reads every row, so errors raised while streaming surface here.
func drain(_ query: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws {
    _ = try await connection.collect(query, logger: logger)
}

extension PostgresConnection {
    /// Runs a statement and collects all its rows on the connection's event loop. Every
    /// statement of the service goes through here (`CollectedRowsTests` checks), never through
    /// postgres-nio's streaming `query(_:logger:) async`: in 1.33.2 that row stream waits for the
    /// consuming task to ask for more rows after every batch, and a read event in that window
    /// (seen in CI while PostgreSQL restarted) traps the process in
    /// `RowStreamStateMachine.channelReadComplete` ("How can we receive a body part, after a
    /// channelReadComplete, ..."). The collecting API asks for more rows on the event loop as
    /// they arrive, so that window never opens. Our results are bounded (a page of at most 201
    /// bookings, a feed's live bookings), so holding them at once costs nothing.
    func collect(_ query: PostgresQuery, logger: Logger) async throws -> CollectedRows {
        let result: EventLoopFuture<PostgresQueryResult> = self.query(query, logger: logger)
        return CollectedRows(rows: try await result.get().rows)
    }

    /// A prepared statement whose result is at most one row (a primary-key lookup), parsed and
    /// planned once per connection: postgres-nio prepares it by name on first use on each
    /// connection. Its rows come through the streaming API the note above warns about, which
    /// is safe here only because a single row arrives in the same read as the statement's end,
    /// so the stream never waits for demand with rows still to come. Never use it for more.
    func single<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws -> Statement.Row? {
        var first: Statement.Row?
        for try await row in try await self.execute(statement, logger: logger) where first == nil {
            first = row
        }
        return first
    }
}

/// Rows already read, with the same `for try await` and `decode` interface as a row sequence.
struct CollectedRows: AsyncSequence, Sendable {
    typealias Element = PostgresRow
    let rows: [PostgresRow]

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        mutating func next() async throws -> PostgresRow? { base.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
}

/// Connections leased from the pool right now, for `db_pool_connections_in_use`. postgres-nio
/// exposes no pool gauge, so every lease goes through `Database`.
enum PoolUsage {
    static let inUse = Atomic<Int>(0)
    static let gauge = Gauge(label: MetricNames.databaseConnectionsInUse)
}

/// `db_failures_total{kind}` and `db_pool_replacements_total`.
enum DatabaseMetrics {
    enum Kind: String, CaseIterable {
        case timeout, unreachable, conflict
        case retriedConflict = "retried_conflict"
    }

    private static let counters: [Kind: Counter] = Dictionary(
        uniqueKeysWithValues: Kind.allCases.map { ($0, Counter(label: MetricNames.databaseFailures, dimensions: [("kind", $0.rawValue)])) }
    )

    static func failure(_ kind: Kind) -> Counter { counters[kind]! }

    static let poolReplacements = Counter(label: MetricNames.databasePoolReplacements)
}
