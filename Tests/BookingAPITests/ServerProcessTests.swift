import Foundation
import Testing

@testable import BookingAPI

/// The real `booking-server` process on a real socket.
@Suite struct ServerProcessTests {
    @Test func sigtermDrainsInFlightRequestsThenExits() async throws {
        let database = try await TestDatabase.create()
        // A deliberately slow hash (~1 s) keeps a login in flight while the signal arrives.
        let slow = try Argon2.hash("slow password here", parameters: .init(memoryKiB: 262_144, iterations: 6, parallelism: 1))
        try await database.execute("INSERT INTO users (username, password_hash, role) VALUES ('slow', \(slow), 'requester')")
        let port = try await freePort()
        let server = try BackgroundProgram.start(
            "booking-server", [],
            environment: ["DATABASE_URL": database.connectionString, "PORT": String(port), "APP_ENV": "test",
                          "MIGRATIONS_DIR": TestEnvironment.migrationsDirectory, "LOG_LEVEL": "info"]
        )
        let base = "http://127.0.0.1:\(port)"
        var up = false
        for _ in 0..<100 where !up {
            up = try await runProgram("/usr/bin/curl", ["-fs", "\(base)/healthz"]).status == 0
            if !up { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(up, "server did not start: \(server.output)")
        #expect(try await runProgram("/usr/bin/curl", ["-fs", "\(base)/ping"]).status == 0)

        async let login = runProgram(
            "/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "username=slow&password=slow+password+here", "\(base)/token"]
        )
        try await Task.sleep(for: .milliseconds(300))
        server.signal(SIGTERM)
        let answered = try await login
        let status = await server.wait()
        #expect(answered.stdout == "200", "the in-flight login was cut off: \(answered.output)\n\(server.output)")
        #expect(status == 0, "\(server.output)")
        // Gone after the drain.
        #expect(try await runProgram("/usr/bin/curl", ["-fs", "--max-time", "2", "\(base)/healthz"]).status != 0)
        #expect(!server.output.contains(database.url.password!))
    }
}
