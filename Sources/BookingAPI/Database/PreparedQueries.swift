import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Statements PostgreSQL parses and plans once per connection, for multi-row results.
///
/// postgres-nio's `PostgresPreparedStatement` API hands rows over through its streaming row
/// sequence, whose trap `collect` avoids (see there); `single` uses it for one-row results only.
/// This goes through postgres-nio's older `PreparedQuery` instead, which collects every row on the
/// event loop as `collect` does. Parsing and planning was about half of PostgreSQL's CPU for a
/// 50-row list (pgbench, the same statement: 4,900 → 8,900/s prepared). Each connection keeps
/// its statements until it closes; parameters are `PostgresData` (the older API's type) and
/// every SQL text is built from constant fragments, never from a value.
final class PreparedQueries: Sendable {
    static let shared = PreparedQueries()

    /// Keyed by the connection object; an entry is removed when its connection closes, and the
    /// removal holds the connection, so its identifier cannot be reused before then.
    private let byConnection = Mutex<[ObjectIdentifier: [String: PreparedQuery]]>([:])

    func rows(_ sql: String, _ binds: [PostgresData], on connection: PostgresConnection) async throws -> [PostgresRow] {
        let prepared = try await statement(sql, on: connection)
        return try await prepared.execute(binds).get()
    }

    /// How many connections hold prepared statements (for tests).
    var connectionCount: Int { byConnection.withLock { $0.count } }

    private func statement(_ sql: String, on connection: PostgresConnection) async throws -> PreparedQuery {
        let key = ObjectIdentifier(connection)
        if let found = byConnection.withLock({ $0[key]?[sql] }) { return found }
        let prepared = try await connection.prepare(query: sql).get()
        let first = byConnection.withLock { table -> Bool in
            let first = table[key] == nil
            table[key, default: [:]][sql] = prepared
            return first
        }
        if first {
            // Runs at once if the connection has already closed.
            connection.closeFuture.whenComplete { _ in
                withExtendedLifetime(connection) { _ = self.byConnection.withLock { $0.removeValue(forKey: key) } }
            }
        }
        return prepared
    }
}
