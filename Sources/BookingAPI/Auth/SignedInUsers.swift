import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// What a bearer token is checked against on every request: never the password hash.
struct TokenState: Sendable, Equatable {
    let id: Int64
    let username: String
    let role: Role
    let disabled: Bool
    let tokenVersion: Int
}

/// The token state of signed-in users, kept in memory only while PostgreSQL is telling this
/// replica about every change to it (`LISTEN user_changes`, fed by a trigger on `users`).
///
/// Trusted only while listening: until the listener has confirmed its `LISTEN`, after it loses
/// its connection, and whenever its heartbeat fails, every lookup reads PostgreSQL and nothing
/// is kept. Each notification and each change of listening state bumps `epoch`; a row read
/// from PostgreSQL is kept only if `epoch` did not move while it was read, so a change that
/// committed during the read is never overwritten by the older row.
final class SignedInUsers: Sendable {
    private struct Entry {
        let state: TokenState
        let readAt: ContinuousClock.Instant
    }

    private struct Cache {
        var listening = false
        /// Listening is trusted until then; each heartbeat moves it on. A connection that died
        /// silently (a partition) stops the heartbeats, and with them the trust.
        var trustedUntil = ContinuousClock.now
        var epoch: UInt64 = 0
        var entries: [Int64: Entry] = [:]
    }

    private let cache = Mutex(Cache())
    private let database: Database
    /// A safety net, not the mechanism: an entry older than this is read again.
    static let maximumAge: Duration = .seconds(60)
    /// Bounded memory: past this many users the cache starts over.
    static let capacity = 100_000

    private static let hits = Counter(label: MetricNames.userCacheLookups, dimensions: [("result", "hit")])
    private static let misses = Counter(label: MetricNames.userCacheLookups, dimensions: [("result", "miss")])
    private static let bypasses = Counter(label: MetricNames.userCacheLookups, dimensions: [("result", "bypass")])

    init(database: Database) {
        self.database = database
    }

    func find(id: Int64, logger: Logger) async throws -> TokenState? {
        let now = ContinuousClock.now
        let (cached, epoch, listening) = cache.withLock { cache -> (TokenState?, UInt64, Bool) in
            guard cache.listening, now < cache.trustedUntil else { return (nil, cache.epoch, false) }
            guard let entry = cache.entries[id], now - entry.readAt < Self.maximumAge else { return (nil, cache.epoch, true) }
            return (entry.state, cache.epoch, true)
        }
        if let cached {
            Self.hits.increment()
            return cached
        }
        (listening ? Self.misses : Self.bypasses).increment()
        let state = try await read(id: id, logger: logger)
        if let state {
            cache.withLock { cache in
                guard cache.listening, cache.epoch == epoch, ContinuousClock.now < cache.trustedUntil else { return }
                if cache.entries.count >= Self.capacity { cache.entries.removeAll(keepingCapacity: true) }
                cache.entries[id] = Entry(state: state, readAt: now)
            }
        }
        return state
    }

    private func read(id: Int64, logger: Logger) async throws -> TokenState? {
        try await database.withConnection(logger: logger) { connection in
            try await connection.single(ByID(id: id), logger: logger)
        }
    }

    /// A user's token state by id (prepared once per connection; never the hash).
    struct ByID: PostgresPreparedStatement {
        static let sql = "SELECT id, username, role, disabled, token_version FROM users WHERE id = $1"
        // A fixed name: the default, `String(reflecting:)` of the type, is built on every execution.
        static let name = "token_state_by_id"
        typealias Row = TokenState
        let id: Int64

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 1)
            bindings.append(id)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws -> TokenState {
            let (id, username, role, disabled, version) = try row.decode((Int64, String, String, Bool, Int).self)
            return TokenState(id: id, username: username, role: Role(rawValue: role) ?? .requester, disabled: disabled, tokenVersion: version)
        }
    }

    /// A user's row changed (or PostgreSQL said so without an id we could read: drop all).
    func changed(id: Int64?) {
        cache.withLock { cache in
            cache.epoch &+= 1
            if let id { cache.entries[id] = nil } else { cache.entries.removeAll() }
        }
    }

    /// Starts or stops trusting the cache; either way, what it held is dropped, since changes
    /// may have gone unheard in between.
    func setListening(_ listening: Bool, trustFor trust: Duration = .zero) {
        cache.withLock { cache in
            cache.epoch &+= 1
            cache.listening = listening
            cache.trustedUntil = ContinuousClock.now + trust
            cache.entries.removeAll()
        }
    }

    /// The notification connection answered: what it has not delivered by now was not sent.
    func heard(at asked: ContinuousClock.Instant, trustFor trust: Duration) {
        let until = asked + trust
        cache.withLock { cache in
            if cache.listening { cache.trustedUntil = max(cache.trustedUntil, until) }
        }
    }

    var isListening: Bool { cache.withLock { $0.listening } }
}

/// Holds `LISTEN user_changes` on a connection of its own and feeds `SignedInUsers`. A
/// heartbeat on that connection every `heartbeat` (answered within a second, or the connection
/// is closed) finds a connection that died silently, such as one cut off by a partition; the
/// cache is trusted only up to `trust` past the last answer, so such a partition can leave a
/// replica on a stale entry for at most that long. A closed connection is noticed at once.
struct UserChangeListener: Service, CustomStringConvertible {
    let users: SignedInUsers
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    var heartbeat: Duration = .seconds(1)
    var trust: Duration = .milliseconds(2500)

    // The configuration holds the database password: keep it out of any description.
    var description: String { "UserChangeListener" }

    static let channel = "user_changes"
    /// Named, so operators (and the tests) can tell this connection in `pg_stat_activity`.
    static let applicationName = "booking-user-changes"

    init(users: SignedInUsers, configuration: PostgresConnection.Configuration, logger: Logger) {
        self.users = users
        var configuration = configuration
        configuration.options.additionalStartupParameters.append(("application_name", Self.applicationName))
        self.configuration = configuration
        self.logger = logger
    }

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await listenOnce()
                try? await Task.sleep(for: .seconds(1))
            }
        }
        users.setListening(false)
    }

    private func listenOnce() async {
        let slot = ConnectionSlot()
        defer { slot.close() }
        do {
            let connection = try await withDeadline(.seconds(5), slot: slot) { [configuration, logger, users] in
                let connection = try await PostgresConnection.connect(configuration: configuration, id: 2, logger: logger)
                slot.hold(connection)
                // The handler runs on the connection's event loop as each notification is read,
                // not in a task waiting its turn on a busy cooperative pool: a request that
                // follows the change by a millisecond already misses.
                _ = connection.addListener(channel: Self.channel) { _, notification in
                    users.changed(id: Int64(notification.payload))
                }
                // Statements run in order on a connection: once this answers, LISTEN is in place.
                _ = try await connection.collect("SELECT 1", logger: logger)
                return connection
            }
            users.setListening(true, trustFor: trust)
            logger.debug("user changes: listening")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // A future's wait ignores cancellation: closing the connection ends it.
                    try await withTaskCancellationHandler {
                        try await connection.closeFuture.get()
                    } onCancel: {
                        slot.close()
                    }
                    throw PostgresStoreError.noRow
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: heartbeat)
                        let asked = ContinuousClock.now
                        try await withDeadline(.seconds(1), closing: connection) { [logger] in
                            _ = try await connection.collect("SELECT 1", logger: logger)
                        }
                        users.heard(at: asked, trustFor: trust)
                    }
                }
                // Whichever ends first (the connection, or a heartbeat that failed) ends both.
                try await group.next()
                group.cancelAll()
            }
        } catch {
            if !Task.isCancelled {
                logger.info(
                    "user changes: the notification connection was lost; reading users from PostgreSQL until it is back",
                    metadata: ["error": .string(DatabaseError.translating(error)?.description ?? "\(type(of: error))")]
                )
            }
        }
        users.setListening(false)
    }
}
