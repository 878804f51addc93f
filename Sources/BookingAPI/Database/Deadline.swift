import Foundation
import Metrics
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The connection an operation holds, so that a deadline can close it.
final class ConnectionSlot: Sendable {
    private struct State {
        var connection: PostgresConnection?
        /// Closed by whoever gave up on the operation: a connection held after that (an
        /// operation that connected after its deadline) is closed at once, not dropped open.
        var closed = false
    }

    private let state = Mutex(State())
    /// The lease is counted in `db_pool_connections_in_use`; uncounted once, by whoever ends
    /// it first: the operation, or the deadline that abandons it.
    private let counted = Atomic<Bool>(false)

    func count() {
        counted.store(true, ordering: .relaxed)
        PoolUsage.gauge.record(PoolUsage.inUse.wrappingAdd(1, ordering: .relaxed).newValue)
    }

    func uncount() {
        if counted.exchange(false, ordering: .relaxed) {
            PoolUsage.gauge.record(PoolUsage.inUse.wrappingSubtract(1, ordering: .relaxed).newValue)
        }
    }

    func hold(_ held: PostgresConnection) {
        let late = state.withLock { state -> Bool in
            state.connection = held
            return state.closed
        }
        if late { held.closeInBackground() }
    }

    func release() { state.withLock { $0.connection = nil } }

    /// Closing the channel fails every statement waiting on it at once, whatever PostgreSQL or
    /// the network does; the pool then replaces the connection.
    func close() {
        state.withLock { state -> PostgresConnection? in
            state.closed = true
            return state.connection
        }?.closeInBackground()
    }
}

/// The deadline passed.
struct DeadlineExceeded: Error {}

/// Where deadline timers run: NIO's shared event loops (the ones postgres-nio uses too).
private let deadlineEventLoops: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

/// Resumes a continuation once, from whichever side gets there first.
private final class FirstAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var answered = false
        var work: Task<Void, Never>?
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())
    /// The operation itself has ended (whoever answered).
    let finished = Atomic<Bool>(false)

    /// Stores the continuation; false when an answer (cancellation) came first.
    func wait(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        state.withLock { state in
            if state.answered {
                continuation.resume(throwing: CancellationError())
                return false
            }
            state.continuation = continuation
            return true
        }
    }

    func attach(work: Task<Void, Never>, timer: Scheduled<Void>) {
        let cancel = state.withLock { state -> Bool in
            state.work = work
            state.timer = timer
            return state.answered
        }
        if cancel {
            work.cancel()
            timer.cancel()
        }
    }

    /// True for the first answer only.
    @discardableResult
    func answer(_ result: Result<T, any Error>) -> Bool {
        let (continuation, timer) = state.withLock { state -> (CheckedContinuation<T, any Error>?, Scheduled<Void>?) in
            guard !state.answered else { return (nil, nil) }
            state.answered = true
            defer { state.continuation = nil }
            return (state.continuation, state.timer)
        }
        guard let continuation else { return false }
        timer?.cancel()
        continuation.resume(with: result)
        return true
    }

    func cancelWork() {
        state.withLock { $0.work }?.cancel()
    }
}

/// Runs `operation`; at `timeout` cancels it and answers `DeadlineExceeded` at once.
///
/// It does not wait for the operation to end. A task-group timeout would: and a statement
/// written to a connection PostgreSQL closed at that instant is never answered by postgres-nio
/// (its promise is dropped with the channel), so the request would hang for good. An operation
/// still running 250 ms after its deadline is reported to `abandoned`; its pool lease is then
/// lost, which `DatabasePool` repairs by replacing the pool once PostgreSQL answers.
func withDeadline<T: Sendable>(
    _ timeout: Duration,
    slot: ConnectionSlot,
    abandoned: @escaping @Sendable () -> Void = {},
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let first = FirstAnswer<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard first.wait(continuation) else { return }
            let work = Task {
                let result: Result<T, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                first.finished.store(true, ordering: .releasing)
                first.answer(result)
            }
            // A NIO timer, not Task.sleep: cancelling it removes it at once, where a cancelled
            // sleep's dispatch timer stays queued until it would have fired (two per request).
            let timer = deadlineEventLoops.any().scheduleTask(in: .init(timeout)) {
                guard first.answer(.failure(DeadlineExceeded())) else { return }
                // The connection is not closed under the statement: postgres-nio 1.33.2 can trip a
                // fatalError in its row-stream state machine when a channel closes mid-stream.
                // PostgreSQL ends the statement itself (statement_timeout = the deadline); in a
                // partition the lease is reported lost below and the pool replaced.
                slot.uncount()
                first.cancelWork()
                Task {
                    try? await Task.sleep(for: .milliseconds(250))
                    if !first.finished.load(ordering: .acquiring) { abandoned() }
                }
            }
            first.attach(work: work, timer: timer)
        }
    } onCancel: {
        first.answer(.failure(CancellationError()))
        first.cancelWork()
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
