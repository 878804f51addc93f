import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The server's connections to PostgreSQL: a `PostgresClient`, watched and replaced when it does
/// not recover by itself.
///
/// Why a watch: postgres-nio 1.33.2's pool backs off connection attempts exponentially (up to a
/// minute) while PostgreSQL is away, and a connection whose peer vanished in a partition stays
/// in it until used. So after any failure the pool is marked degraded; a probe then connects
/// directly every `probeInterval`, and once PostgreSQL answers it tests the pool with one short
/// lease. A pool that still fails is replaced by a fresh one, so requests succeed again within
/// about a second of PostgreSQL accepting connections.
///
/// Why `minimumConnections = 0`: with a minimum above zero the pool trips a `precondition`
/// (`createNewDemandConnectionIfPossible`) when PostgreSQL restarts under load — failed attempts
/// are destroyed, the live count falls below the minimum, and the next lease crashes the process
/// (`Tests/BookingAPITests/PoolCrashReproducer.swift`).
public final class DatabasePool: Service, Sendable {
    let configuration: PostgresClient.Configuration
    let probeConfiguration: PostgresConnection.Configuration
    let logger: Logger
    let probeInterval: Duration = .milliseconds(100)
    let testTimeout: Duration = .milliseconds(750)

    private struct State {
        var client: PostgresClient
        var running: [Task<Void, Never>] = []
        var generation = 0
        var stopped = false
    }

    private let state: Mutex<State>
    private let degraded = Atomic<Bool>(false)
    /// An operation never returned its lease (see `withDeadline`): the pool has lost capacity
    /// and is replaced once PostgreSQL answers.
    private let leaseLost = Atomic<Bool>(false)
    private let wake: AsyncStream<Void>
    private let wakeContinuation: AsyncStream<Void>.Continuation

    init(configuration: PostgresClient.Configuration, probe: PostgresConnection.Configuration, logger: Logger) {
        self.configuration = configuration
        self.probeConfiguration = probe
        self.logger = logger
        self.state = Mutex(State(client: PostgresClient(configuration: configuration, backgroundLogger: logger)))
        (wake, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The client to lease from now.
    var client: PostgresClient { state.withLock { $0.client } }

    /// Replacements made so far (for tests and metrics).
    var generation: Int { state.withLock { $0.generation } }

    /// A statement failed because PostgreSQL was unreachable or too slow: start watching.
    func reportFailure() {
        if degraded.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            wakeContinuation.yield()
        }
    }

    func reportLostLease() {
        leaseLost.store(true, ordering: .relaxed)
        reportFailure()
        // The failure may have been reported (and recovered from) before the lease was lost.
        wakeContinuation.yield()
    }

    public func run() async {
        state.withLock { state in
            let client = state.client
            state.running.append(Task { await client.run() })
        }
        await withGracefulShutdownHandler {
            for await _ in wake {
                await recover()
            }
        } onGracefulShutdown: {
            self.state.withLock { $0.stopped = true }
            self.wakeContinuation.finish()
        }
        wakeContinuation.finish()
        let tasks = state.withLock { state in
            state.stopped = true
            return state.running
        }
        for task in tasks { task.cancel() }
        // A pool with a lost lease may never finish shutting down; give it a moment, no more.
        _ = try? await withDeadline(.seconds(2), slot: ConnectionSlot()) {
            for task in tasks { await task.value }
        }
    }

    /// Waits until PostgreSQL accepts a connection, then keeps or replaces the pool.
    private func recover() async {
        while !Task.isCancelled, !isStopped {
            if await probe() {
                if leaseLost.exchange(false, ordering: .relaxed) {
                    replace()
                } else if await poolWorks() {
                    logger.info("database pool recovered")
                } else {
                    replace()
                }
                degraded.store(false, ordering: .relaxed)
                return
            }
            try? await Task.sleep(for: probeInterval)
        }
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    /// One direct connection, bounded by its connect timeout (which covers authentication).
    private func probe() async -> Bool {
        do {
            let connection = try await PostgresConnection.connect(configuration: probeConfiguration, id: 0, logger: logger)
            defer { connection.closeInBackground() }
            return try await withDeadline(testTimeout, closing: connection) {
                try await drain("SELECT 1", on: connection, logger: self.logger)
                return true
            }
        } catch {
            return false
        }
    }

    private func poolWorks() async -> Bool {
        let client = self.client
        let slot = ConnectionSlot()
        do {
            return try await withDeadline(testTimeout, slot: slot) {
                try await client.withConnection { connection in
                    slot.hold(connection)
                    defer { slot.release() }
                    try await drain("SELECT 1", on: connection, logger: self.logger)
                    return true
                }
            }
        } catch {
            return false
        }
    }

    private func replace() {
        let fresh = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let retired: Task<Void, Never>? = state.withLock { state in
            guard !state.stopped else { return nil }
            state.client = fresh
            state.generation += 1
            state.running.append(Task { await fresh.run() })
            // The old client's run task is first in line; cancelling it shuts that pool down and
            // fails its waiting leases, which answer 503.
            return state.running.removeFirst()
        }
        guard let retired else { return }
        retired.cancel()
        DatabaseMetrics.poolReplacements.increment()
        logger.warning("database pool replaced: it had not recovered after PostgreSQL came back")
    }
}
