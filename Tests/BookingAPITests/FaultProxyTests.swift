import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing

@testable import BookingAPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Each mode of `FaultProxy` against the tests' real PostgreSQL. Every wait is bounded.
@Suite struct FaultProxyTests {
    // MARK: Modes

    @Test func forwardPassesQueriesBothWays() async throws {
        try await withProxy { proxy in
            #expect(proxy.port != (try TestEnvironment.serverURL()).port)
            let connection = try await connect(through: proxy)
            for _ in 0..<3 {
                #expect(try await selectOne(connection) == 1)
            }
            await close(connection)
        }
    }

    @Test func delayHoldsEveryChunk() async throws {
        try await withProxy { proxy in
            let connection = try await connect(through: proxy)
            #expect(try await selectOne(connection) == 1)

            try await proxy.setMode(.delay(.milliseconds(300)))
            let clock = ContinuousClock()
            let start = clock.now
            let value = try await selectOne(connection)
            let elapsed = clock.now - start
            #expect(value == 1)
            #expect(elapsed >= .milliseconds(300), "a query through a 300 ms delay took \(elapsed)")

            // Back to forward: the same connection still works (nothing was lost, order was kept).
            try await proxy.setMode(.forward)
            #expect(try await selectOne(connection) == 1)
            await close(connection)
        }
    }

    @Test func blackholeAnswersNothing() async throws {
        try await withProxy { proxy in
            let connection = try await connect(through: proxy)
            #expect(try await selectOne(connection) == 1)

            try await proxy.setMode(.blackhole)
            let query = await race(.seconds(1)) { try await Self.selectOneUnbounded(connection) }
            #expect(query.timedOut, "a query through a partition finished: \(query)")
            await close(connection)

            let attempt = await race(.seconds(1)) { try await Self.rawConnect(port: proxy.port) }
            #expect(attempt.timedOut, "a connection through a partition finished: \(attempt)")
            if case .finished(.success(let late)) = attempt { await close(late) }

            // The partition ends: new connections work again.
            try await proxy.setMode(.forward)
            let fresh = try await connect(through: proxy)
            #expect(try await selectOne(fresh) == 1)
            await close(fresh)
        }
    }

    @Test func refuseRefusesThenForwardListensOnTheSamePort() async throws {
        try await withProxy { proxy in
            let port = proxy.port
            let existing = try await connect(through: proxy)
            #expect(try await selectOne(existing) == 1)

            try await proxy.setMode(.refuse)
            let attempt = await race(.seconds(1)) { try await Self.rawConnect(port: port) }
            switch attempt {
            case .timedOut:
                Issue.record("connecting to a refusing proxy did not fail within 1 s")
            case .finished(.success(let connection)):
                Issue.record("connecting to a refusing proxy succeeded")
                await close(connection)
            case .finished(.failure(let error)):
                #expect(isConnectionRefused(error), "not a refusal: \(String(reflecting: error))")
            }

            // Existing connections were closed. (A query is no probe here: postgres-nio 1.33 never
            // answers a query on a connection that is already closed.)
            let closing = await race(.seconds(1)) { try await existing.closeFuture.get() }
            #expect(!closing.timedOut, "an existing connection was not closed within 1 s of refusing")
            #expect(existing.isClosed)
            await close(existing)

            try await proxy.setMode(.forward)
            #expect(proxy.port == port)
            let fresh = try await connect(through: proxy)
            #expect(try await selectOne(fresh) == 1)
            await close(fresh)
        }
    }

    @Test func resetBreaksExistingAndNewConnections() async throws {
        try await withProxy { proxy in
            let connection = try await connect(through: proxy)
            #expect(try await selectOne(connection) == 1)

            // A query in flight when the reset comes fails at once.
            let sql = "SELECT 7 FROM pg_sleep(3) -- \(UUID().uuidString)"
            let inFlight = Task { try await Self.scalar(sql, on: connection) }
            try await Self.waitUntilRunning(sql)
            try await proxy.setMode(.reset)
            let query = await race(.seconds(1)) { try await inFlight.value }
            #expect(query.failed, "a query on a reset connection: \(query)")
            await close(connection)

            let attempt = await race(.seconds(1)) { try await Self.rawConnect(port: proxy.port) }
            #expect(attempt.failed, "a connection accepted in reset mode: \(attempt)")
            if case .finished(.success(let late)) = attempt { await close(late) }

            try await proxy.setMode(.forward)
            let fresh = try await connect(through: proxy)
            #expect(try await selectOne(fresh) == 1)
            await close(fresh)
        }
    }

    @Test func resetSendsARSTOnExistingAndNewConnections() async throws {
        // A plain socket sees the RST itself (ECONNRESET), not an orderly close.
        try await withProxy { proxy in
            let (existing, existingErrors) = try await Self.rawSocket(port: proxy.port)
            try await Task.sleep(for: .milliseconds(100))
            #expect(existing.isActive)
            try await proxy.setMode(.reset)
            try await within(.seconds(2), "close of a connection that was reset") { try await existing.closeFuture.get() }
            #expect((existingErrors.error as? IOError)?.errnoCode == ECONNRESET, "existing: \(String(describing: existingErrors.error))")

            // The RST may come before the client has seen its connect finish: that fails the connect.
            do {
                let (fresh, freshErrors) = try await Self.rawSocket(port: proxy.port)
                try await within(.seconds(2), "close of a connection accepted in reset mode") { try await fresh.closeFuture.get() }
                #expect((freshErrors.error as? IOError)?.errnoCode == ECONNRESET, "new: \(String(describing: freshErrors.error))")
            } catch let error as NIOConnectionError {
                #expect(Self.hasErrno(error, ECONNRESET), "new: \(String(reflecting: error))")
            }
        }
    }

    @Test func endOfPartitionClosesConnectionsThatLostBytesAndKeepsIdleOnes() async throws {
        try await withProxy { proxy in
            let busy = try await connect(through: proxy)
            let idle = try await connect(through: proxy)
            #expect(try await selectOne(busy) == 1)
            #expect(try await selectOne(idle) == 1)

            try await proxy.setMode(.blackhole)
            let lost = await race(.seconds(1)) { try await Self.selectOneUnbounded(busy) }
            #expect(lost.timedOut, "a query through a partition: \(lost)")

            try await proxy.setMode(.forward)
            let closing = await race(.seconds(1)) { try await busy.closeFuture.get() }
            #expect(!closing.timedOut, "a connection that lost bytes was not closed when the partition ended")
            #expect(try await selectOne(idle) == 1)
            await close(busy)
            await close(idle)
        }
    }

    // MARK: Helpers

    private func withProxy(_ body: @Sendable (FaultProxy) async throws -> Void) async throws {
        let server = try TestEnvironment.serverURL()
        let proxy = try await within(.seconds(5), "start the proxy") {
            try await FaultProxy.start(upstreamHost: server.host, upstreamPort: server.port)
        }
        do {
            try await body(proxy)
        } catch {
            try? await within(.seconds(5), "shut the proxy down") { try await proxy.shutdown() }
            throw error
        }
        try await within(.seconds(5), "shut the proxy down") { try await proxy.shutdown() }
    }

    /// A bare TCP connection to the proxy that sends nothing and records the first error.
    private static func rawSocket(port: Int) async throws -> (any Channel, ErrorBox) {
        let errors = ErrorBox()
        let channel = try await within(.seconds(5), "connect a plain socket") {
            try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(3))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ErrorRecorder(errors))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        }
        return (channel, errors)
    }

    /// Waits (at most 5 s) until PostgreSQL runs `sql`, asking it directly, not through a proxy.
    private static func waitUntilRunning(_ sql: String) async throws {
        let server = try TestEnvironment.serverURL()
        let direct = try await within(.seconds(5), "connect to PostgreSQL directly") {
            try await PostgresConnection.connect(
                configuration: configuration(host: server.host, port: server.port), id: 2, logger: TestEnvironment.logger)
        }
        let seen = await race(.seconds(5)) {
            while true {
                let running = try await scalar(
                    "SELECT count(*)::int8 FROM pg_stat_activity WHERE state = 'active' AND query = '\(sql)'",
                    on: direct
                )
                if running > 0 { return }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        try? await within(.seconds(2), "close") { try await direct.close() }
        switch seen {
        case .timedOut: throw TimedOut(description: "the query did not reach PostgreSQL within 5 s")
        case .finished(let result): try result.get()
        }
    }

    private static func configuration(host: String = "127.0.0.1", port: Int) throws -> PostgresConnection.Configuration {
        let server = try TestEnvironment.serverURL()
        var configuration = PostgresConnection.Configuration(
            host: host,
            port: port,
            username: server.username,
            password: server.password,
            database: server.database,
            tls: .disable
        )
        configuration.options.connectTimeout = .seconds(3)
        return configuration
    }

    private static func rawConnect(port: Int) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: configuration(port: port), id: 1, logger: TestEnvironment.logger)
    }

    private func connect(through proxy: FaultProxy) async throws -> PostgresConnection {
        try await within(.seconds(5), "connect through the proxy") { try await Self.rawConnect(port: proxy.port) }
    }

    private static func selectOneUnbounded(_ connection: PostgresConnection) async throws -> Int {
        try await scalar("SELECT 1", on: connection)
    }

    private static func scalar(_ sql: String, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestEnvironment.logger)
        for try await value in rows.decode(Int.self) {
            return value
        }
        throw TestSetupError("\(sql) returned no row")
    }

    private func selectOne(_ connection: PostgresConnection) async throws -> Int {
        try await within(.seconds(5), "SELECT 1") { try await Self.selectOneUnbounded(connection) }
    }

    private func close(_ connection: PostgresConnection) async {
        try? await within(.seconds(2), "close") { try await connection.close() }
    }

    private func isConnectionRefused(_ error: any Error) -> Bool {
        Self.hasErrno(error, ECONNREFUSED)
    }

    /// Whether `error` (or, for a connect, every attempt's error) is an `IOError` with `code`.
    private static func hasErrno(_ error: any Error, _ code: CInt) -> Bool {
        if let error = error as? PSQLError, let underlying = error.underlying {
            return hasErrno(underlying, code)
        }
        if let error = error as? NIOConnectionError {
            return !error.connectionErrors.isEmpty && error.connectionErrors.allSatisfy { hasErrno($0.error, code) }
        }
        if let error = error as? IOError {
            return error.errnoCode == code
        }
        return false
    }
}

// MARK: - Bounded waiting

private enum RaceOutcome<T: Sendable>: Sendable, CustomStringConvertible {
    case finished(Result<T, any Error>)
    case timedOut

    var timedOut: Bool {
        if case .timedOut = self { return true }
        return false
    }

    var failed: Bool {
        if case .finished(.failure) = self { return true }
        return false
    }

    var description: String {
        switch self {
        case .timedOut: "timed out"
        case .finished(.success(let value)): "succeeded with \(value)"
        case .finished(.failure(let error)): "failed with \(String(reflecting: error))"
        }
    }
}

private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<RaceOutcome<T>, Never>?>

    init(_ continuation: CheckedContinuation<RaceOutcome<T>, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ outcome: RaceOutcome<T>) {
        let continuation = self.continuation.withLock { stored in
            let taken = stored
            stored = nil
            return taken
        }
        continuation?.resume(returning: outcome)
    }
}

/// Runs `body` for at most `limit`. On time-out the work is cancelled and left to end on its own
/// (the caller closes whatever it waits on), so this never waits longer than `limit`.
private func race<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async -> RaceOutcome<T> {
    let work = Task { try await body() }
    let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<RaceOutcome<T>, Never>) in
        let once = ResumeOnce(continuation)
        Task { once.resume(.finished(await work.result)) }
        Task {
            try? await Task.sleep(for: limit)
            once.resume(.timedOut)
        }
    }
    if outcome.timedOut { work.cancel() }
    return outcome
}

private struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// `body`'s result, or `TimedOut` after `limit`.
private func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    switch await race(limit, body) {
    case .timedOut: throw TimedOut(description: "\(what) did not finish within \(limit)")
    case .finished(let result): return try result.get()
    }
}

/// The first error a channel saw.
private final class ErrorBox: Sendable {
    private let stored = Mutex<(any Error)?>(nil)
    var error: (any Error)? { stored.withLock { $0 } }
    func record(_ error: any Error) { stored.withLock { if $0 == nil { $0 = error } } }
}

private final class ErrorRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let box: ErrorBox

    init(_ box: ErrorBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        box.record(error)
        context.close(promise: nil)
    }
}
