import Foundation
import Logging
import Metrics
import PostgresNIO
import Synchronization

/// Connections leased from the pool right now, for `db_pool_connections_in_use`. postgres-nio
/// exposes no pool gauge, so every lease the application takes goes through `leased`.
enum PoolUsage {
    static let inUse = Atomic<Int>(0)
    static let gauge = Gauge(label: MetricNames.databaseConnectionsInUse)
}

extension PostgresClient {
    /// Leases one connection for `body`, counted while it is held.
    func leased<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        PoolUsage.gauge.record(PoolUsage.inUse.wrappingAdd(1, ordering: .relaxed).newValue)
        defer { PoolUsage.gauge.record(PoolUsage.inUse.wrappingSubtract(1, ordering: .relaxed).newValue) }
        return try await withConnection { connection in try await body(connection) }
    }
}
