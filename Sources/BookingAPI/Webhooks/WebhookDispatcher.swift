import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Delivers webhook events: a service of `booking-server`.
///
/// Work is claimed from `webhook_deliveries` with `FOR UPDATE SKIP LOCKED` and leased for
/// `lease` (longer than an attempt can take), so with several replicas each attempt is made by
/// one of them. A `LISTEN webhook_events` connection wakes it at each commit; it also looks every
/// `pollInterval`, which finds retries that fall due and covers a lost notification connection.
/// When PostgreSQL falters it logs, waits and looks again; it never blocks the API, which only
/// writes rows.
struct WebhookDispatcher: Service, CustomStringConvertible {
    let database: Database
    let listenConfiguration: PostgresConnection.Configuration
    let allowPrivateNetworks: Bool
    let logger: Logger
    /// The first retry waits about this long (±20 % jitter); each further one three times longer,
    /// up to 2880 times it (4 hours at the default of 5 s).
    var retryBase: Duration = .seconds(5)
    var pollInterval: Duration = .seconds(2)
    static let inFlightLimit = 32
    var maximumInFlight = WebhookDispatcher.inFlightLimit
    static let coalescing: Duration = .milliseconds(20)

    /// Any 2xx within this time is success.
    static let attemptTimeout: TimeAmount = .seconds(10)
    static let lease = "60 seconds"
    /// A delivery is given up once both hold: this many attempts, and this old.
    static let minimumAttempts = 8
    static let minimumRetryPeriod: TimeInterval = 86_400
    /// Bytes of a receiver's answer read before the connection is dropped.
    static let responseLimit = 16 * 1024

    /// ServiceLifecycle logs its services: never the connection settings, which hold a password.
    var description: String { "WebhookDispatcher" }

    func run() async {
        let wakeup = Wakeup()
        let clients = WebhookClients(logger: logger)
        let inFlight = InFlight()
        let finished = Finished()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.listen(wakeup: wakeup) }
                group.addTask { await self.reportBacklog() }
                group.addTask { await self.recordFinished(finished, inFlight: inFlight, wakeup: wakeup) }
                while !Task.isCancelled {
                    let free = maximumInFlight - inFlight.count.load(ordering: .relaxed)
                    var claimed: [Job] = []
                    if free > 0 {
                        do {
                            claimed = try await claim(limit: free)
                        } catch is CancellationError {
                            break
                        } catch {
                            logger.warning("webhooks: claiming deliveries failed; will retry", metadata: ["error": .string(Self.describe(database: error))])
                        }
                    }
                    for job in claimed {
                        inFlight.count.add(1, ordering: .relaxed)
                        group.addTask { finished.add(await self.attempt(job, clients: clients)) }
                    }
                    // A full batch: there may be more due at once.
                    if free > 0, claimed.count == free { continue }
                    await wakeup.wait(upTo: pollInterval)
                    // Commits arriving together are claimed together: one claim per burst, not one
                    // per notification (a small delay against the 1 s the contract allows).
                    try? await Task.sleep(for: Self.coalescing)
                }
                group.cancelAll()
            }
        }
        await clients.shutdown()
    }

    // MARK: Claiming and recording

    struct Job: Sendable {
        let delivery: Int64
        let attempt: Int
        let deliveryCreated: Date
        let subscription: Int64
        let url: String
        let keys: [[UInt8]]
        let event: String
        let type: String
        let data: String
        let eventCreated: Date
    }

    /// One statement, atomic on its own (no BEGIN/COMMIT round trips).
    func claim(limit: Int) async throws -> [Job] {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                WITH due AS (
                    SELECT d.id FROM webhook_deliveries d
                    JOIN webhook_subscriptions s ON s.id = d.subscription_id
                    WHERE d.state = 'pending' AND d.next_attempt_at <= clock_timestamp()
                      AND (d.lease_until IS NULL OR d.lease_until <= clock_timestamp())
                      AND NOT s.disabled
                    ORDER BY d.next_attempt_at
                    LIMIT \(limit)
                    FOR UPDATE OF d SKIP LOCKED
                )
                UPDATE webhook_deliveries d SET
                    lease_until = clock_timestamp() + interval '\(unescaped: Self.lease)',
                    attempts = d.attempts + 1, last_attempt_at = clock_timestamp()
                FROM due, webhook_subscriptions s, webhook_events e
                WHERE d.id = due.id AND s.id = d.subscription_id AND e.id = d.event_id
                RETURNING d.id, d.attempts, d.created_at, s.id, s.url, s.secret,
                    CASE WHEN s.previous_secret_until > clock_timestamp() THEN s.previous_secret END,
                    e.id, e.type, e.data, e.created_at
                """,
                logger: logger
            )
            var jobs: [Job] = []
            for try await row in rows {
                let (delivery, attempt, created, subscription, url, secret, previous, event, type, data, eventCreated) =
                    try row.decode((Int64, Int, Date, Int64, String, Data, Data?, String, String, String, Date).self)
                jobs.append(Job(
                    delivery: delivery, attempt: attempt, deliveryCreated: created, subscription: subscription, url: url,
                    keys: [Array(secret)] + (previous.map { [Array($0)] } ?? []),
                    event: event, type: type, data: data, eventCreated: eventCreated
                ))
            }
            return jobs
        }
    }

    enum Outcome: Sendable, Equatable {
        case status(Int)
        /// No answer: connection refused, reset, timed out, or an address not allowed.
        case error(String)
        /// The server is shutting down: the attempt was cut short.
        case interrupted
    }

    /// One attempt made, waiting to be recorded.
    struct Attempted: Sendable {
        let job: Job
        let outcome: Outcome
        let startedAt: Date
        let milliseconds: Int
    }

    func attempt(_ job: Job, clients: WebhookClients) async -> Attempted {
        let startedAt = Date()
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await send(job, clients: clients)
        let elapsed = clock.now - start
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        return Attempted(job: job, outcome: outcome, startedAt: startedAt, milliseconds: milliseconds)
    }

    /// Records finished attempts, as many as are waiting in one transaction (one statement for
    /// all of them), so that the database work per event stays small under load. At shutdown it
    /// records what the cut-off attempts report before it returns.
    func recordFinished(_ finished: Finished, inFlight: InFlight, wakeup: Wakeup) async {
        while true {
            let batch = finished.take()
            if !batch.isEmpty {
                // A detached task is not cancelled by shutdown: the outcomes are recorded.
                await Task.detached { await self.record(batch) }.value
                inFlight.count.subtract(batch.count, ordering: .relaxed)
                wakeup.signal()
                continue
            }
            if Task.isCancelled {
                if inFlight.count.load(ordering: .relaxed) == 0 { return }
                await Task.detached { try? await Task.sleep(for: .milliseconds(20)) }.value
                continue
            }
            await finished.wakeup.wait(upTo: .seconds(1))
        }
    }

    struct Decision: Sendable, Equatable {
        var state = "pending"
        var next = Date()
        var status: Int?
        var error: String?
        var gone = false
    }

    /// What an attempt's outcome makes of the delivery.
    static func decide(_ outcome: Outcome, attempt: Int, deliveryCreated: Date, retryBase: Duration, now: Date = Date()) -> Decision {
        var decision = Decision(next: now)
        switch outcome {
        case .status(let code) where (200..<300).contains(code):
            decision.state = "delivered"
            decision.status = code
        case .status(410):
            decision.state = "failed"
            decision.status = 410
            decision.gone = true
        case .interrupted:
            decision.error = "interrupted: the server was shutting down"
        case .status, .error:
            if case .status(let code) = outcome { decision.status = code }
            if case .error(let text) = outcome { decision.error = text }
            if attempt >= minimumAttempts, now.timeIntervalSince(deliveryCreated) >= minimumRetryPeriod {
                decision.state = "failed"
            } else {
                decision.next = now.addingTimeInterval(backoff(attempt: attempt, base: retryBase))
            }
        }
        return decision
    }

    func record(_ batch: [Attempted]) async {
        let decided = batch.map { ($0, Self.decide($0.outcome, attempt: $0.job.attempt, deliveryCreated: $0.job.deliveryCreated, retryBase: retryBase)) }
        do {
            try await write(decided)
        } catch {
            // One bad row (a delivery deleted with its subscription meanwhile) must not lose the
            // others: record them one by one.
            for item in decided where batch.count > 1 {
                try? await write([item])
            }
            if batch.count == 1 {
                // The lease runs out and the delivery is tried again: at least once, not exactly once.
                logger.warning(
                    "webhooks: recording an attempt failed; the delivery will be tried again",
                    metadata: ["delivery": "\(batch[0].job.delivery)", "error": .string(Self.describe(database: error))]
                )
            }
        }
        for (attempted, decision) in decided {
            switch (decision.state, attempted.outcome) {
            case ("delivered", _):
                WebhookMetrics.outcome(.delivered).increment()
                WebhookMetrics.latency.recordNanoseconds(Int64(max(0, Date().timeIntervalSince(attempted.job.eventCreated)) * 1e9))
            case (_, .interrupted): break
            case _ where decision.gone: WebhookMetrics.outcome(.gone).increment()
            case ("failed", _): WebhookMetrics.outcome(.failed).increment()
            default: WebhookMetrics.outcome(.retried).increment()
            }
        }
    }

    private func write(_ decided: [(Attempted, Decision)]) async throws {
        // Arrays bind as one parameter each; 0 and "" stand for "no status" and "no error".
        let deliveries = decided.map { $0.0.job.delivery }
        let attempts = decided.map { $0.0.job.attempt }
        let started = decided.map { $0.0.startedAt }
        let durations = decided.map { $0.0.milliseconds }
        let statuses = decided.map { $0.1.status ?? 0 }
        let errors = decided.map { $0.1.error ?? "" }
        let states = decided.map { $0.1.state }
        let next = decided.map { $0.1.next }
        let gone = Array(Set(decided.filter { $0.1.gone }.map { $0.0.job.subscription }))
        // One statement, atomic on its own; a transaction only when a 410 disables a subscription.
        let work: @Sendable (PostgresConnection) async throws -> Void = { [logger] connection in
            // Only while the lease is still this attempt's (another replica may have taken the
            // delivery after it ran out). A retry asked for meanwhile keeps it due now.
            try await drain(
                """
                WITH o AS (
                    SELECT * FROM unnest(\(deliveries)::bigint[], \(attempts)::bigint[], \(started)::timestamptz[],
                        \(durations)::bigint[], \(statuses)::bigint[], \(errors)::text[], \(states)::text[], \(next)::timestamptz[])
                        AS o(delivery, attempt, started, duration, status, error, state, next)
                ), recorded AS (
                    INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, status, error)
                    SELECT delivery, attempt, started, duration, nullif(status, 0), nullif(error, '') FROM o
                )
                UPDATE webhook_deliveries d SET
                    lease_until = NULL, last_status = nullif(o.status, 0), last_error = nullif(o.error, ''),
                    state = CASE WHEN d.retry_requested_at IS NOT NULL THEN 'pending' ELSE o.state END,
                    next_attempt_at = CASE WHEN d.retry_requested_at IS NOT NULL THEN clock_timestamp() ELSE o.next END,
                    retry_requested_at = NULL
                FROM o WHERE d.id = o.delivery AND d.attempts = o.attempt
                """,
                on: connection, logger: logger
            )
            for subscription in gone {
                var changed = false
                for try await _ in try await connection.collect(
                    """
                    UPDATE webhook_subscriptions SET disabled = true, disabled_reason = 'gone', updated_at = now()
                    WHERE id = \(subscription) AND NOT disabled RETURNING id
                    """,
                    logger: logger
                ) { changed = true }
                if changed {
                    try await Audit.record(
                        "webhook.updated", target: .webhook, id: subscription, actor: ExpirySweeper.actor,
                        note: "disabled: the receiver answered 410 Gone", on: connection, logger: logger
                    )
                }
            }
        }
        if gone.isEmpty {
            try await database.withConnection(logger: logger, work)
        } else {
            try await database.transaction(logger: logger, work)
        }
    }

    /// Seconds until attempt `attempt + 1`: base · 3^(attempt−1), capped, times 0.8–1.2.
    static func backoff(attempt: Int, base: Duration) -> TimeInterval {
        let seconds = Double(base.components.seconds) + Double(base.components.attoseconds) / 1e18
        let exponential = seconds * pow(3, Double(max(0, attempt - 1)))
        return min(exponential, seconds * 2880) * Double.random(in: 0.8...1.2)
    }

    // MARK: Sending

    static func body(_ job: Job) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(job.data.utf8.count + 128)
        out.append(contentsOf: #"{"id":""#.utf8)
        out.append(contentsOf: job.event.utf8)
        out.append(contentsOf: #"","type":""#.utf8)
        out.append(contentsOf: job.type.utf8)
        out.append(contentsOf: #"","timestamp":"#.utf8)
        CalendarController.instant(job.eventCreated, into: &out)
        out.append(contentsOf: #","data":"#.utf8)
        out.append(contentsOf: job.data.utf8)
        out.append(UInt8(ascii: "}"))
        return out
    }

    func send(_ job: Job, clients: WebhookClients) async -> Outcome {
        guard case .success(let target) = WebhookTarget.parse(job.url, allowPrivateNetworks: allowPrivateNetworks) else {
            return .error("the URL is no longer allowed")
        }
        // Checked again now, and the connection goes to the address checked (DNS rebinding).
        let address: IPAddress
        switch await WebhookAddress.check(target, allowPrivateNetworks: allowPrivateNetworks) {
        case .success(let checked): address = checked
        case .failure(let refusal):
            if case .notAllowed = refusal { WebhookMetrics.outcome(.refused).increment() }
            return .error("refused: the host \(refusal.message)")
        }
        let body = Self.body(job)
        let timestamp = Int64(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: job.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "booking-api-webhooks/1")
        request.headers.add(name: "webhook-id", value: job.event)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: WebhookSignature.header(id: job.event, timestamp: timestamp, body: body, keys: job.keys))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let client = try await clients.client(host: target.host, address: address)
            let response = try await client.execute(request, deadline: .now() + Self.attemptTimeout, logger: logger)
            // Read a little of the answer, no more: a receiver cannot make us buffer much.
            var read = 0
            for try await chunk in response.body {
                read += chunk.readableBytes
                if read > Self.responseLimit { break }
            }
            return .status(Int(response.status.code))
        } catch {
            if Task.isCancelled { return .interrupted }
            return .error(Self.describe(http: error))
        }
    }

    static func describe(http error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout: return "timed out after \(attemptTimeout.nanoseconds / 1_000_000_000) s"
            case .remoteConnectionClosed: return "the receiver closed the connection"
            case .cancelled: return "cancelled"
            default: return "HTTP error: \(error.shortDescription)"
            }
        }
        if let error = error as? NIOConnectionError {
            return "could not connect" + (error.connectionErrors.first.map { ": \($0.error)" } ?? "")
        }
        if let error = error as? IOError { return "connection error: \(error.description)" }
        return "\(type(of: error))"
    }

    static func describe(database error: any Error) -> String {
        DatabaseError.translating(error)?.description ?? "\(type(of: error))"
    }

    // MARK: Waking

    /// Holds `LISTEN webhook_events` on a connection of its own and wakes the loop at each
    /// notification. A lost connection is opened again after a second; polling covers the gap.
    func listen(wakeup: Wakeup) async {
        while !Task.isCancelled {
            // The slot closes the connection however this ends, also when it was opened just
            // after a deadline or a cancellation gave up on it.
            let slot = ConnectionSlot()
            defer { slot.close() }
            do {
                let notifications = try await withDeadline(.seconds(5), slot: slot) { [listenConfiguration, logger] in
                    let connection = try await PostgresConnection.connect(configuration: listenConfiguration, id: 1, logger: logger)
                    slot.hold(connection)
                    return try await connection.listen("webhook_events")
                }
                // Whatever committed while no one listened.
                wakeup.signal()
                for try await _ in notifications { wakeup.signal() }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.debug("webhooks: the notification connection was lost; reconnecting", metadata: ["error": .string(Self.describe(database: error))])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Events are kept this long, then deleted with their deliveries unless one is pending.
    static let retention = "30 days"

    func prune() async throws -> Int {
        try await database.withConnection(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                WITH gone AS (
                    DELETE FROM webhook_events e
                    WHERE e.created_at < now() - interval '\(unescaped: Self.retention)'
                      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
                    RETURNING 1
                )
                SELECT count(*) FROM gone
                """,
                logger: logger
            )
            var deleted = 0
            for try await count in rows.decode(Int.self) { deleted = count }
            return deleted
        }
    }

    /// `webhook_outbox_backlog` and `webhook_outbox_oldest_seconds` every 10 s; old events pruned
    /// every hour.
    func reportBacklog() async {
        var round = 0
        while !Task.isCancelled {
            if round % 360 == 0 {
                do {
                    let deleted = try await prune()
                    if deleted > 0 { logger.info("webhooks: pruned old events", metadata: ["count": "\(deleted)"]) }
                } catch {
                    if Task.isCancelled { return }
                }
            }
            round += 1
            do {
                try await database.withConnection(logger: logger) { connection in
                    let rows = try await connection.collect(
                        """
                        SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at))::float8, 0)
                        FROM webhook_deliveries WHERE state = 'pending'
                        """,
                        logger: logger
                    )
                    for try await (count, oldest) in rows.decode((Int, Double).self) {
                        WebhookMetrics.backlog.record(count)
                        WebhookMetrics.oldest.record(oldest)
                    }
                }
            } catch {
                if Task.isCancelled { return }
            }
            try? await Task.sleep(for: .seconds(10))
        }
    }
}

/// Attempts being made or waiting to be recorded.
final class InFlight: Sendable {
    let count = Atomic<Int>(0)
}

/// Attempts made and not yet recorded.
final class Finished: Sendable {
    private let items = Mutex<[WebhookDispatcher.Attempted]>([])
    let wakeup = Wakeup()

    func add(_ item: WebhookDispatcher.Attempted) {
        items.withLock { $0.append(item) }
        wakeup.signal()
    }

    func take() -> [WebhookDispatcher.Attempted] {
        items.withLock { items in
            defer { items = [] }
            return items
        }
    }
}

/// Wakes one waiting task; a signal with no one waiting is kept for the next wait.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter, waiter.id == id else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Returns at the next signal, after `timeout`, or when the task is cancelled.
    func wait(upTo timeout: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let id = state.withLock { state -> UInt64? in
                    if state.pending {
                        state.pending = false
                        return nil
                    }
                    state.nextID += 1
                    state.waiter = (state.nextID, continuation)
                    return state.nextID
                }
                guard let id else {
                    continuation.resume()
                    return
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.expire(id)
                }
            }
        } onCancel: {
            signal()
        }
    }
}

/// One HTTP client per host and checked address, so that every connection goes to the address
/// that was checked (`dnsOverride` keeps the host name for TLS), while connections to the same
/// receiver are reused. Bounded: the least recently used client is shut down past `limit`.
actor WebhookClients {
    private var clients: [String: HTTPClient] = [:]
    private var order: [String] = []
    private let logger: Logger
    static let limit = 32

    init(logger: Logger) { self.logger = logger }

    func client(host: String, address: IPAddress) throws -> HTTPClient {
        let key = host + "|" + address.description
        if let existing = clients[key] {
            order.removeAll { $0 == key }
            order.append(key)
            return existing
        }
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: WebhookDispatcher.attemptTimeout),
            // As many connections to one receiver as attempts in flight (AHC's default is 8).
            connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: WebhookDispatcher.inFlightLimit),
            decompression: .disabled
        )
        configuration.dnsOverride = [host: address.description]
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration, backgroundActivityLogger: logger)
        clients[key] = client
        order.append(key)
        if order.count > Self.limit {
            let evicted = order.removeFirst()
            if let old = clients.removeValue(forKey: evicted) {
                Task { try? await old.shutdown() }
            }
        }
        return client
    }

    func shutdown() async {
        let all = clients.values
        clients = [:]
        order = []
        for client in all { try? await client.shutdown() }
    }
}

/// `webhook_deliveries_total{outcome}`, `webhook_outbox_backlog`, `webhook_outbox_oldest_seconds`
/// and `webhook_delivery_latency_seconds` (commit to a 2xx).
enum WebhookMetrics {
    enum Outcome: String, CaseIterable {
        case delivered, retried, failed, gone, refused
    }

    private static let counters: [Outcome: Counter] = Dictionary(
        uniqueKeysWithValues: Outcome.allCases.map { ($0, Counter(label: MetricNames.webhookDeliveries, dimensions: [("outcome", $0.rawValue)])) }
    )

    static func outcome(_ outcome: Outcome) -> Counter { counters[outcome]! }

    static let backlog = Gauge(label: MetricNames.webhookBacklog)
    static let oldest = Gauge(label: MetricNames.webhookOldest)
    static let latency = Metrics.Timer(label: MetricNames.webhookLatency)
}
