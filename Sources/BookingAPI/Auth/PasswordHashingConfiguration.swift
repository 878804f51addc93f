import Foundation
import NIOCore

/// argon2id cost parameters and the bounds of the hashing pool.
public struct PasswordHashingConfiguration: Sendable, Equatable {
    /// Memory in KiB; OWASP's minimum for argon2id with t=2 is 19456 (19 MiB).
    public var memoryKiB: Int
    public var iterations: Int
    public var parallelism: Int
    /// Threads that hash; never the event loops.
    public var threads: Int
    /// Hash jobs allowed to wait for a thread; beyond that `/token` answers 503 at once.
    public var queueLimit: Int

    public init(memoryKiB: Int = 19456, iterations: Int = 2, parallelism: Int = 1, threads: Int = System.coreCount, queueLimit: Int = 64) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
        self.threads = threads
        self.queueLimit = queueLimit
    }

    public static func load(from reader: EnvironmentReader) throws(ConfigurationError) -> Self {
        Self(
            memoryKiB: try reader.integer("ARGON2_MEMORY_KIB", default: 19456, range: 19456...4_194_304),
            iterations: try reader.integer("ARGON2_ITERATIONS", default: 2, range: 2...64),
            parallelism: try reader.integer("ARGON2_PARALLELISM", default: 1, range: 1...16),
            threads: try reader.integer("HASH_THREADS", default: System.coreCount, range: 1...256),
            queueLimit: try reader.integer("HASH_QUEUE_LIMIT", default: 64, range: 0...100_000)
        )
    }
}
