import Foundation
import PostgresNIO
import Synchronization

/// The connection an operation holds, so that a deadline can close it.
final class ConnectionSlot: Sendable {
    private let connection = Mutex<PostgresConnection?>(nil)

    func hold(_ held: PostgresConnection) { connection.withLock { $0 = held } }
    func release() { connection.withLock { $0 = nil } }

    /// Closing the channel fails every statement waiting on it at once, whatever PostgreSQL or
    /// the network does; the pool then replaces the connection.
    func close() {
        connection.withLock { $0 }?.closeInBackground()
    }
}

private enum DeadlineOutcome<T: Sendable>: Sendable {
    case finished(T)
    case timedOut
}

/// The deadline passed.
struct DeadlineExceeded: Error {}

/// Runs `operation`; at `timeout` closes the connection in `slot` and cancels the operation.
///
/// A task-group timeout alone would wait for a child that ignores cancellation (a statement on
/// a partitioned connection does). Here every await inside responds: a lease is cancellable, a
/// connect has its own deadline, and a statement fails as soon as its channel is closed.
func withDeadline<T: Sendable>(
    _ timeout: Duration,
    slot: ConnectionSlot,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: DeadlineOutcome<T>.self) { group in
        group.addTask { .finished(try await operation()) }
        group.addTask {
            try await Task.sleep(for: timeout)
            return .timedOut
        }
        defer { group.cancelAll() }
        switch try await group.next()! {
        case .finished(let value):
            return value
        case .timedOut:
            slot.close()
            throw DeadlineExceeded()
        }
    }
}

/// The same for an operation on one connection the caller owns.
func withDeadline<T: Sendable>(
    _ timeout: Duration,
    closing connection: PostgresConnection,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let slot = ConnectionSlot()
    slot.hold(connection)
    return try await withDeadline(timeout, slot: slot, operation)
}

extension PostgresConnection {
    /// Closes without waiting. The closure keeps the connection alive until its channel is
    /// closed: its deinit asserts that it was.
    func closeInBackground() {
        close().whenComplete { _ in withExtendedLifetime(self) {} }
    }
}
