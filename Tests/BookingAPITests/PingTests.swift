import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import BookingAPI

@Suite struct PingTests {
    @Test func readyWhenEveryMigrationIsApplied() async throws {
        let app = try await TestApp.make()
        try await app.test { client in
            let ping = try await client.send(.get, "/ping")
            #expect(ping.status == .ok)
            #expect(ping.json["message"] as? String == "ok")
            #expect(ping.json["database"] as? String == "ok")
            let migrations = try #require(ping.json["migrations"] as? [String: Any])
            let latest = try MigrationDirectory.load(TestEnvironment.migrationsDirectory).files.last?.version
            #expect(migrations["current"] as? String == latest)
            #expect(migrations["latest"] as? String == latest)
            #expect((migrations["pending"] as? [String])?.isEmpty == true)
            #expect(try await client.send(.get, "/ping/").status == .ok)
            #expect(try await client.send(.get, "/healthz").status == .ok)
        }
    }

    @Test func pendingFileMakesItUnreadyUntilApplied() async throws {
        let directory = try copyOfMigrations()
        let app = try await TestApp.make(migrationsDirectory: directory)
        try await app.test { client in
            #expect(try await client.send(.get, "/ping").status == .ok)
            try "CREATE TABLE later (id int);\n".write(toFile: "\(directory)/\(try nextMigrationVersion())_later.sql", atomically: true, encoding: .utf8)
            let pending = try await client.send(.get, "/ping")
            #expect(pending.status == .serviceUnavailable)
            #expect(pending.headers[.contentType] == "application/problem+json")
            #expect(pending.headers[.retryAfter] != nil)
            #expect(pending.json["message"] as? String == "Database is not up-to-date yet")
            #expect(pending.json["status"] as? Int == 503)
            let migrations = try #require(pending.json["migrations"] as? [String: Any])
            #expect(migrations["pending"] as? [String] == [try nextMigrationVersion()])
            #expect(migrations["latest"] as? String == (try nextMigrationVersion()))

            try await app.database.migrate(directory)
            #expect(try await client.send(.get, "/ping").status == .ok)
        }
    }

    @Test func driftMakesItUnready() async throws {
        let directory = try copyOfMigrations()
        let app = try await TestApp.make(migrationsDirectory: directory)
        let path = "\(directory)/0001_users.sql"
        try (try String(contentsOfFile: path, encoding: .utf8) + "\n-- changed\n").write(toFile: path, atomically: true, encoding: .utf8)
        try await app.test { client in
            let ping = try await client.send(.get, "/ping")
            #expect(ping.status == .serviceUnavailable)
            let migrations = try #require(ping.json["migrations"] as? [String: Any])
            #expect(migrations["drift"] as? [String] == ["0001"])
        }
    }

    /// Stops a private PostgreSQL cluster under a running server, then starts it again.
    @Test func databaseOutageIsReportedQuicklyAndRecoveredWithoutRestart() async throws {
        let clusterScript = TestEnvironment.packageRoot.appendingPathComponent("scripts/pg-cluster").path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outage-\(UUID())").path
        let port = try await runProgram(
            "/usr/bin/env", ["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let initialised = try await runProgram(clusterScript, ["init", directory, port], environment: ["PG_FAST": "1"])
        try #require(initialised.status == 0, "\(initialised.output)")
        #expect(try await runProgram(clusterScript, ["start", directory]).status == 0)
        let url = try DatabaseURL("postgres://postgres@/postgres?host=\(directory)/run&port=\(port)")
        let database = TestDatabase(url: url)
        try await database.migrate()
        let app = try await TestApp.make(database: database)
        try await app.test { client in
            #expect(try await client.send(.get, "/ping").status == .ok)

            #expect(try await runProgram(clusterScript, ["stop", directory]).status == 0)
            let started = ContinuousClock.now
            let down = try await client.send(.get, "/ping")
            let elapsed = ContinuousClock.now - started
            #expect(down.status == .serviceUnavailable)
            #expect(down.json["message"] as? String == "Database unreachable")
            #expect(down.json["database"] as? String == "unreachable")
            #expect(elapsed < .milliseconds(2000), "took \(elapsed)")
            #expect(try await client.send(.get, "/healthz").status == .ok)

            #expect(try await runProgram(clusterScript, ["start", directory]).status == 0)
            var recovered = false
            for _ in 0..<60 where !recovered {
                recovered = try await client.send(.get, "/ping").status == .ok
                if !recovered { try await Task.sleep(for: .milliseconds(500)) }
            }
            #expect(recovered)
        }
        _ = try await runProgram(clusterScript, ["stop", directory])
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite struct HTTPBehaviourTests {
    @Test func requestIDIsEchoedWhenSafeAndGeneratedOtherwise() async throws {
        let app = try await TestApp.make()
        try await app.test { client in
            let echoed = try await client.send(.get, "/healthz", headers: [.init("X-Request-ID")!: "abc-123.x"])
            #expect(echoed.headers[.init("X-Request-ID")!] == "abc-123.x")
            let unsafe = try await client.send(.get, "/healthz", headers: [.init("X-Request-ID")!: "bad id <script>"])
            let generated = try #require(unsafe.headers[.init("X-Request-ID")!])
            #expect(generated != "bad id <script>")
            #expect(!generated.isEmpty)
            let tooLong = try await client.send(.get, "/nope", headers: [.init("X-Request-ID")!: String(repeating: "a", count: 129)])
            #expect(tooLong.headers[.init("X-Request-ID")!]?.count != 129)
            #expect(tooLong.status == .notFound)
            #expect(tooLong.headers[.contentType] == "application/problem+json")
            #expect(tooLong.json["title"] as? String == "Not Found")
        }
    }

    @Test func unknownErrorsBecomeBareProblem500s() async throws {
        let response = ProblemMiddleware.response(for: TestSetupError("SELECT secret FROM internals"), logger: TestEnvironment.logger)
        #expect(response.status == .internalServerError)
        #expect(response.headers[.contentType] == "application/problem+json")
        var body = response.body
        _ = body
        let text = try await collect(response)
        #expect(!text.contains("SELECT"))
        #expect(text.contains(#""status":500"#))
    }

    func collect(_ response: Hummingbird.Response) async throws -> String {
        final class Sink: @unchecked Sendable, ResponseBodyWriter {
            var bytes = ByteBuffer()
            func write(_ buffer: ByteBuffer) async throws { var b = buffer; bytes.writeBuffer(&b) }
            func finish(_ trailingHeaders: HTTPFields?) async throws {}
        }
        let sink = Sink()
        try await response.body.write(sink)
        return String(buffer: sink.bytes)
    }
}
