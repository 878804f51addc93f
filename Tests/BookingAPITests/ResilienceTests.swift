import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Synchronization
import Testing

@testable import BookingAPI

/// PostgreSQL faltering under a running server: partitions, refusals, resets and stalls through
/// a fault-injecting proxy, and real restarts of a private cluster under load. Every route that
/// needs the database answers 503 with `Retry-After` within the deadline plus one second, never a
/// 500 or a hang, and succeeds again within 2 s of PostgreSQL answering.
@Suite(.serialized) struct ResilienceTests {
    static let deadline = Duration.seconds(2)
    static let slack = Duration.seconds(1)

    struct Timed {
        let status: HTTPResponse.Status
        let retryAfter: String?
        let elapsed: Duration
        let body: String
    }

    static func timed(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ path: String, token: String? = nil, json: Any? = nil, form: String? = nil) async throws -> Timed {
        let started = ContinuousClock.now
        let response: TestResponseBody
        if let form {
            response = try await client.send(method, path, body: form, contentType: "application/x-www-form-urlencoded")
        } else {
            response = try await client.send(method, path, token: token, json: json)
        }
        return Timed(status: response.status, retryAfter: response.headers[.retryAfter], elapsed: ContinuousClock.now - started, body: response.text)
    }

    /// An app whose database connections go through `proxy`.
    static func appBehindProxy(poolSize: Int = 4) async throws -> (TestApp, FaultProxy) {
        let database = try await TestDatabase.create()
        let proxy = try await FaultProxy.start(upstreamHost: database.url.host, upstreamPort: database.url.port)
        let app = try await TestApp.make(database: database) { configuration in
            configuration.database.host = "127.0.0.1"
            configuration.database.port = proxy.port
            configuration.databaseTimeout = deadline
            configuration.databasePoolSize = poolSize
        }
        return (app, proxy)
    }

    @Test(arguments: [FaultProxy.Mode.blackhole, .refuse, .reset, .delay(.seconds(4))])
    func everyDatabaseRouteAnswers503WithinTheDeadlineThenRecovers(_ mode: FaultProxy.Mode) async throws {
        let (app, proxy) = try await Self.appBehindProxy()
        defer { Task { try? await proxy.shutdown() } }
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let token = try await client.token("ada")
            let created = try await client.send(.post, "/booking", token: token, json: bookingBody())
            try #require(created.status == .created)
            let id = try #require(created.json["id"] as? Int)

            try await proxy.setMode(mode)
            let probes: [(HTTPRequest.Method, String, Any?, String?)] = [
                (.get, "/booking", nil, nil),
                (.get, "/booking/\(id)", nil, nil),
                (.post, "/booking", bookingBody(topic: "During the outage"), nil),
                (.post, "/booking/accept", ["id": id], nil),
                (.get, "/me", nil, nil),
                (.post, "/token", nil, "username=ada&password=correct+horse+battery"),
            ]
            for (method, path, json, form) in probes {
                let answer = try await Self.timed(client, method, path, token: token, json: json, form: form)
                #expect(answer.status == .serviceUnavailable, "\(mode) \(method) \(path): \(answer.status) \(answer.body)")
                #expect(answer.retryAfter != nil, "\(mode) \(method) \(path) has no Retry-After")
                #expect(answer.elapsed <= Self.deadline + Self.slack, "\(mode) \(method) \(path) took \(answer.elapsed)")
                #expect(!answer.body.contains("PSQLError") && !answer.body.contains("SELECT"))
            }
            let health = try await Self.timed(client, .get, "/healthz")
            #expect(health.status == .ok)
            #expect(health.elapsed < .milliseconds(500))
            let ping = try await Self.timed(client, .get, "/ping")
            #expect(ping.status == .serviceUnavailable)
            #expect(ping.body.contains("Database unreachable"), "\(ping.body)")
            #expect(ping.elapsed < .seconds(2), "ping took \(ping.elapsed)")

            try await proxy.setMode(.forward)
            let healed = ContinuousClock.now
            var recovered: Duration?
            while recovered == nil, ContinuousClock.now - healed < .seconds(10) {
                if try await client.send(.get, "/booking", token: token).status == .ok {
                    recovered = ContinuousClock.now - healed
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            let took = try #require(recovered, "\(mode): requests did not succeed again within 10 s")
            // After a blackhole heals, the pool's connections from before it are desynchronised
            // (what was sent into it never arrived): a request leased one of them waits out its
            // deadline before the replaced pool answers the next one. Otherwise within 2 s.
            let bound = mode == .blackhole ? Self.deadline + Self.slack : .seconds(2)
            #expect(took < bound, "\(mode): requests succeeded again only after \(took)")
            #expect(try await client.send(.get, "/ping").status == .ok)
        }
    }

    @Test func aShortStallIsWaitedOut() async throws {
        let (app, proxy) = try await Self.appBehindProxy()
        defer { Task { try? await proxy.shutdown() } }
        try await app.createUser("ada", role: .admin)
        try await app.test { client in
            let token = try await client.token("ada")
            try await proxy.setMode(.delay(.milliseconds(150)))
            #expect(try await client.send(.get, "/booking", token: token).status == .ok)
            #expect(try await client.send(.post, "/booking", token: token, json: bookingBody()).status == .created)
        }
    }

    /// Every pooled connection waits on a lock: requests give up at the deadline with 503, and
    /// readiness, on its own connection, still tells the truth.
    @Test func aBusyPoolIs503AndReadinessIsNotFooled() async throws {
        let database = try await TestDatabase.create()
        let app = try await TestApp.make(database: database) { configuration in
            configuration.databaseTimeout = Self.deadline
            configuration.databasePoolSize = 2
        }
        try await app.createUser("ada", role: .admin)
        let url = database.url
        try await app.test { client in
            let token = try await client.token("ada")
            let locker = try await PostgresConnection.connect(
                configuration: .init(host: url.host, port: url.port, username: url.username, password: url.password, database: url.database, tls: .disable),
                id: 99, logger: TestEnvironment.logger
            )
            try await locker.query("BEGIN", logger: TestEnvironment.logger)
            try await locker.query("LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE", logger: TestEnvironment.logger)
            let answers = try await withThrowingTaskGroup(of: Timed.self) { group in
                for _ in 0..<4 { group.addTask { try await Self.timed(client, .get, "/booking", token: token) } }
                var answers: [Timed] = []
                for try await answer in group { answers.append(answer) }
                return answers
            }
            for answer in answers {
                #expect(answer.status == .serviceUnavailable, "\(answer.status) \(answer.body)")
                #expect(answer.elapsed <= Self.deadline + Self.slack, "took \(answer.elapsed)")
            }
            // Both pooled connections may still be waiting; readiness is not.
            try await locker.query("SELECT 1", logger: TestEnvironment.logger)
            let ping = try await Self.timed(client, .get, "/ping")
            #expect(ping.status == .ok, "\(ping.body)")
            try await locker.query("ROLLBACK", logger: TestEnvironment.logger)
            try await locker.close()
            #expect(try await client.send(.get, "/booking", token: token).status == .ok)
        }
    }

    /// `pg_ctl restart` (fast and immediate) 20 times while 16 clients read and write: no crash,
    /// no 500, nothing slower than the deadline, back within 2 s of each restart, and every
    /// acknowledged booking still there.
    @Test func restartsUnderLoad() async throws {
        let cluster = try await PrivateCluster.start()
        defer { Task { await cluster.remove() } }
        let database = TestDatabase(url: try cluster.url)
        try await database.migrate()
        let app = try await TestApp.make(database: database) { configuration in
            configuration.databaseTimeout = Self.deadline
            configuration.databasePoolSize = 10
        }
        try await app.createUser("ada", role: .admin)
        struct Tally: Sendable {
            var statuses: [Int: Int] = [:]
            var slowest: Duration = .zero
            var acknowledged: Set<Int> = []
        }
        final class Shared: Sendable {
            let tally = Mutex(Tally())
            let running = Atomic<Bool>(true)
        }
        let shared = Shared()
        try await app.test { client in
            let token = try await client.token("ada")
            var recoveries: [Duration] = []
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        var round = 0
                        while shared.running.load(ordering: .relaxed) {
                            round += 1
                            let write = worker % 4 == 0
                            let answer: Timed
                            var id: Int?
                            if write {
                                let started = ContinuousClock.now
                                let response = try await client.send(
                                    .post, "/booking", token: token, json: bookingBody(topic: "w\(worker) r\(round)", hoursFromNow: Double(24 * 40 + worker * 1000 + round))
                                )
                                answer = Timed(status: response.status, retryAfter: response.headers[.retryAfter], elapsed: ContinuousClock.now - started, body: response.text)
                                id = response.json["id"] as? Int
                            } else {
                                answer = try await Self.timed(client, .get, "/booking?limit=20", token: token)
                            }
                            shared.tally.withLock { tally in
                                tally.statuses[answer.status.code, default: 0] += 1
                                tally.slowest = max(tally.slowest, answer.elapsed)
                                if answer.status == .created, let id { tally.acknowledged.insert(id) }
                            }
                            if answer.status == .serviceUnavailable { try await Task.sleep(for: .milliseconds(20)) }
                        }
                    }
                }
                for attempt in 0..<20 {
                    try await Task.sleep(for: .milliseconds(300))
                    try await cluster.restart(mode: attempt.isMultiple(of: 2) ? "fast" : "immediate")
                    let back = ContinuousClock.now
                    while ContinuousClock.now - back < .seconds(10) {
                        if try await client.send(.get, "/booking?limit=1", token: token).status == .ok { break }
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    recoveries.append(ContinuousClock.now - back)
                }
                shared.running.store(false, ordering: .relaxed)
                try await group.waitForAll()
            }
            let final = shared.tally.withLock { $0 }
            #expect(Set(final.statuses.keys).isSubset(of: [200, 201, 503]), "statuses: \(final.statuses)")
            #expect(final.statuses[500] == nil)
            #expect(final.slowest <= Self.deadline + Self.slack, "slowest answer \(final.slowest)")
            #expect(recoveries.allSatisfy { $0 < .seconds(2) }, "recoveries: \(recoveries)")
            #expect((final.statuses[201] ?? 0) > 0 && (final.statuses[200] ?? 0) > 0, "\(final.statuses)")
            // Every acknowledged write survived the restarts (fsync is off on test clusters, but
            // a fast or immediate restart of the server process keeps the OS page cache).
            let stored = try await database.scalar("SELECT count(*) FROM bookings", as: Int.self) ?? 0
            #expect(stored >= final.acknowledged.count)
            for id in final.acknowledged.prefix(50) {
                // A 503 here is the pool still settling after the last restart, not a lost write.
                var status = try await client.send(.get, "/booking/\(id)", token: token).status
                for _ in 0..<20 where status == .serviceUnavailable {
                    try await Task.sleep(for: .milliseconds(100))
                    status = try await client.send(.get, "/booking/\(id)", token: token).status
                }
                #expect(status == .ok, "booking \(id): \(status)")
            }
        }
    }

    /// Two admins accept two overlapping bookings at the same moment: exactly one wins, the
    /// other gets 409 naming it, never a deadlock's 500.
    @Test func overlappingAcceptsAtOnceEndIn200And409() async throws {
        let app = try await TestApp.make()
        try await app.createUser("ada", role: .admin)
        try await app.createUser("bob", role: .admin)
        try await app.test { client in
            let ada = try await client.token("ada")
            let bob = try await client.token("bob")
            for round in 0..<30 {
                let hours = Double(24 * 60 + round * 10)
                let first = try await client.send(.post, "/booking", token: ada, json: bookingBody(topic: "a\(round)", hoursFromNow: hours, duration: 120))
                let second = try await client.send(.post, "/booking", token: ada, json: bookingBody(topic: "b\(round)", hoursFromNow: hours + 1, duration: 120))
                let a = try #require(first.json["id"] as? Int), b = try #require(second.json["id"] as? Int)
                async let x = client.send(.post, "/booking/accept", token: ada, json: ["id": a])
                async let y = client.send(.post, "/booking/accept", token: bob, json: ["id": b])
                let (one, two) = try await (x, y)
                let statuses = [one.status.code, two.status.code].sorted()
                #expect(statuses == [200, 409], "round \(round): \(one.status) \(one.text) / \(two.status) \(two.text)")
                let loser = one.status == .conflict ? one : two
                let winnerID = one.status == .ok ? a : b
                #expect(loser.json["conflicting_id"] as? Int == winnerID, "\(loser.text)")
            }
        }
    }

    /// SIGTERM with a request stuck on a partitioned database: the process still ends within
    /// SHUTDOWN_GRACE_SECONDS (plus the watchdog's second).
    @Test func shutdownEndsWhateverIsStuck() async throws {
        let database = try await TestDatabase.create()
        let proxy = try await FaultProxy.start(upstreamHost: database.url.host, upstreamPort: database.url.port)
        defer { Task { try? await proxy.shutdown() } }
        let app = try await TestApp.make(database: database)
        try await app.createUser("ada", role: .admin)
        let port = try await freePort()
        let viaProxy = "postgres://\(database.url.username):\(database.url.password ?? "")@127.0.0.1:\(proxy.port)/\(database.url.database)?sslmode=disable"
        let server = try BackgroundProgram.start(
            "booking-server", [],
            environment: ["DATABASE_URL": viaProxy, "PORT": String(port), "APP_ENV": "test", "MIGRATIONS_DIR": TestEnvironment.migrationsDirectory,
                          "DATABASE_TIMEOUT_SECONDS": "60", "SHUTDOWN_GRACE_SECONDS": "2", "LOG_LEVEL": "warning"]
        )
        let base = "http://127.0.0.1:\(port)"
        var up = false
        for _ in 0..<100 where !up {
            up = try await runProgram("/usr/bin/curl", ["-fs", "\(base)/healthz"]).status == 0
            if !up { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(up, "server did not start: \(server.output)")
        try await proxy.setMode(.blackhole)
        async let stuck = runProgram("/usr/bin/curl", ["-s", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code}", "-d", "username=ada&password=x", "\(base)/token"])
        try await Task.sleep(for: .milliseconds(500))
        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        _ = await server.wait()
        let took = ContinuousClock.now - signalled
        #expect(took < .seconds(5), "exit took \(took): \(server.output)")
        _ = try await stuck
        #expect(!server.output.contains(database.url.password!))
    }
}

/// The command-line programs name the cause in one line within 10 s.
@Suite struct CommandLineDatabaseErrorTests {
    static func run(_ program: String, _ arguments: [String], url: String, input: String? = nil) async throws -> (ProcessResult, Duration) {
        let started = ContinuousClock.now
        let result = try await runProgram(program, arguments, environment: ["DATABASE_URL": url], input: input)
        return (result, ContinuousClock.now - started)
    }

    static func expectOneLine(_ result: ProcessResult, containing expected: String, elapsed: Duration, secret: String?) {
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains(expected), "stderr: \(result.stderr)")
        #expect(!result.stderr.contains("PSQLError") && !result.stderr.contains("Generic description"), "stderr: \(result.stderr)")
        if let secret { #expect(!result.output.contains(secret)) }
        #expect(elapsed < .seconds(10), "took \(elapsed)")
    }

    @Test(arguments: ["", "?sslmode=disable", "?sslmode=prefer"])
    func wrongPasswordAndUnknownDatabaseAreNamed(_ query: String) async throws {
        let server = try TestEnvironment.serverURL()
        let wrong = "postgres://\(server.username):not-the-password@\(server.host):\(server.port)/postgres\(query)"
        let (denied, deniedTime) = try await Self.run("manage-passwords", ["list"], url: wrong)
        Self.expectOneLine(denied, containing: "password authentication failed", elapsed: deniedTime, secret: "not-the-password")
        let unknown = "postgres://\(server.username):\(server.password ?? "")@\(server.host):\(server.port)/no_such_database\(query)"
        let (missing, missingTime) = try await Self.run("migration-runner", ["status"], url: unknown)
        Self.expectOneLine(missing, containing: "does not exist", elapsed: missingTime, secret: server.password)
    }

    @Test func tlsRequiredByTheURLButNotOfferedIsNamed() async throws {
        let server = try TestEnvironment.serverURL()
        let url = "postgres://\(server.username):\(server.password ?? "")@\(server.host):\(server.port)/postgres?sslmode=require"
        let (result, elapsed) = try await Self.run("manage-passwords", ["list"], url: url)
        Self.expectOneLine(result, containing: "TLS", elapsed: elapsed, secret: server.password)
    }

    @Test func aHostThatDoesNotAnswerIsNamedWithin10Seconds() async throws {
        let server = try TestEnvironment.serverURL()
        let proxy = try await FaultProxy.start(upstreamHost: server.host, upstreamPort: server.port)
        defer { Task { try? await proxy.shutdown() } }
        try await proxy.setMode(.blackhole)
        let url = "postgres://\(server.username):\(server.password ?? "")@127.0.0.1:\(proxy.port)/postgres"
        let (result, elapsed) = try await Self.run("manage-passwords", ["list"], url: url)
        Self.expectOneLine(result, containing: "no answer within", elapsed: elapsed, secret: server.password)
    }

    @Test func aMissingSchemaSaysToRunTheMigrations() async throws {
        let database = try await TestDatabase.create(migrated: false)
        let (list, listTime) = try await Self.run("manage-passwords", ["list"], url: database.connectionString)
        Self.expectOneLine(list, containing: "run migration-runner up", elapsed: listTime, secret: database.url.password)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rotate-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "ada,admin\n".write(toFile: "\(directory)/users.csv", atomically: true, encoding: .utf8)
        let (rotate, rotateTime) = try await Self.run(
            "manage-passwords", ["rotate", "--file", "\(directory)/users.csv", "--output-file", "\(directory)/out.csv"], url: database.connectionString
        )
        Self.expectOneLine(rotate, containing: "run migration-runner up", elapsed: rotateTime, secret: database.url.password)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
