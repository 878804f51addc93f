import Foundation
import Metrics
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Hashes and verifies passwords on its own bounded thread pool — never on an event loop —
/// with a bounded queue: when it is full, callers get `Saturated` at once instead of piling up
/// work (each hash holds `memoryKiB` of memory while it runs).
public final class PasswordHasher: Service, Sendable {
    public struct Saturated: Error {}

    public let configuration: PasswordHashingConfiguration
    private let pool: NIOThreadPool
    private let jobs = Atomic<Int>(0)
    private let queueGauge = Gauge(label: MetricNames.hashQueueDepth)
    private let waitTimer = Metrics.Timer(label: MetricNames.hashWait)
    /// Verified against when a username is unknown, so that costs one hash too. Made by
    /// `prepare()` at start-up (on the pool), so the first login costs what every other does.
    private let dummyHash = Mutex<String?>(nil)

    public init(configuration: PasswordHashingConfiguration) {
        self.configuration = configuration
        self.pool = NIOThreadPool(numberOfThreads: configuration.threads)
        self.pool.start()
    }

    /// Jobs waiting for or holding a thread.
    public var queueDepth: Int { jobs.load(ordering: .relaxed) }

    public func hash(_ password: String) async throws -> String {
        let parameters = configuration.argon2
        return try await run { try Argon2.hash(password, parameters: parameters) }
    }

    public func verify(_ password: String, against encoded: String) async throws -> Bool {
        try await run { Argon2.verify(password, encoded: encoded) }
    }

    /// Whether `prepare()` has made the dummy hash (the first unknown-user login would otherwise
    /// pay for it).
    var hasDummyHash: Bool { dummyHash.withLock { $0 != nil } }

    /// Makes the dummy hash, on the pool. `buildApplication` awaits it before serving.
    public func prepare() async throws {
        guard dummyHash.withLock({ $0 }) == nil else { return }
        let encoded = try await hash(UUID().uuidString)
        dummyHash.withLock { $0 = encoded }
    }

    /// Spends the time of one verification and answers false.
    public func verifyAgainstDummy(_ password: String) async throws -> Bool {
        let existing = dummyHash.withLock { $0 }
        let encoded: String
        if let existing {
            encoded = existing
        } else {
            encoded = try await hash(UUID().uuidString)
            dummyHash.withLock { $0 = encoded }
        }
        _ = try await verify(password, against: encoded)
        return false
    }

    /// True when `encoded` was made with weaker parameters than the configured ones.
    public func needsRehash(_ encoded: String) -> Bool {
        guard let stored = Argon2.parameters(of: encoded) else { return true }
        let current = configuration.argon2
        return stored.memoryKiB < current.memoryKiB || stored.iterations < current.iterations
            || stored.parallelism < current.parallelism
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let limit = configuration.threads + configuration.queueLimit
        let depth = jobs.wrappingAdd(1, ordering: .relaxed).newValue
        guard depth <= limit else {
            jobs.wrappingSubtract(1, ordering: .relaxed)
            throw Saturated()
        }
        queueGauge.record(depth)
        defer {
            let remaining = jobs.wrappingSubtract(1, ordering: .relaxed).newValue
            queueGauge.record(remaining)
        }
        let enqueued = ContinuousClock.now
        return try await pool.runIfActive {
            let waited = ContinuousClock.now - enqueued
            self.waitTimer.recordNanoseconds(waited.components.seconds * 1_000_000_000 + waited.components.attoseconds / 1_000_000_000)
            return try work()
        }
    }

    /// Runs until shutdown, then stops the threads.
    public func run() async throws {
        try? await gracefulShutdown()
        try await pool.shutdownGracefully()
    }

    /// For one-shot programs that never run the service.
    public func shutdown() async throws {
        try await pool.shutdownGracefully()
    }
}

extension PasswordHashingConfiguration {
    var argon2: Argon2.Parameters {
        .init(memoryKiB: memoryKiB, iterations: iterations, parallelism: parallelism)
    }
}

/// Passwords that people choose or that a pipeline supplies.
extension PasswordHasher {
    /// Hashes per second with the configured parameters on every pool thread, through the same
    /// library call as logins: the ceiling `scripts/bench` compares `POST /token` with.
    public func benchmark(seconds: Int) async throws -> Double {
        let deadline = ContinuousClock.now + .seconds(seconds)
        let started = ContinuousClock.now
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<configuration.threads {
                group.addTask {
                    var done = 0
                    while ContinuousClock.now < deadline {
                        _ = try await self.hash("benchmark password")
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = ContinuousClock.now - started
        return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}
