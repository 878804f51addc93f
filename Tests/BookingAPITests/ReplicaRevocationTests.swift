import Foundation
import Testing

@testable import BookingAPI

/// Two `booking-server` processes on one database, each keeping signed-in users in memory
/// (`SignedInUsers`): a change made through one is refused on the next request through the
/// other, also when the other's notification connection has just been cut.
@Suite(.serialized) struct ReplicaRevocationTests {
    struct Replica {
        let server: BackgroundProgram
        let base: String
    }

    static func startReplicas(_ database: TestDatabase, count: Int = 2) async throws -> [Replica] {
        // One signing key for all, as replicas of one deployment share it.
        let key = try await runProgram("/usr/bin/openssl", ["genpkey", "-algorithm", "ed25519"])
        try #require(key.status == 0)
        var replicas: [Replica] = []
        for _ in 0..<count {
            let port = try await freePort()
            let server = try BackgroundProgram.start(
                "booking-server", [],
                environment: ["DATABASE_URL": database.connectionString, "PORT": String(port), "APP_ENV": "test",
                              "MIGRATIONS_DIR": TestEnvironment.migrationsDirectory, "LOG_LEVEL": "warning",
                              "JWT_PRIVATE_KEY": key.output]
            )
            replicas.append(Replica(server: server, base: "http://127.0.0.1:\(port)"))
        }
        for replica in replicas {
            var up = false
            for _ in 0..<100 where !up {
                up = try await curl(.get, "\(replica.base)/healthz").status == 200
                if !up { try await Task.sleep(for: .milliseconds(100)) }
            }
            if !up { replica.server.signal(SIGKILL) }
            try #require(up, "server did not start: \(replica.server.output)")
        }
        return replicas
    }

    enum Method: String { case get = "GET", post = "POST", patch = "PATCH" }

    static func curl(_ method: Method, _ url: String, token: String? = nil, json: String? = nil, form: [String] = []) async throws -> (status: Int, body: String) {
        var arguments = ["-s", "-m", "10", "-X", method.rawValue, "-w", "\n%{http_code}"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
        for field in form { arguments += ["--data-urlencode", field] }
        let result = try await runProgram("/usr/bin/curl", arguments + [url])
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func accessToken(_ base: String, _ username: String, _ password: String) async throws -> String {
        let answer = try await curl(.post, "\(base)/token", form: ["username=\(username)", "password=\(password)"])
        try #require(answer.status == 200, "login: \(answer.status)")
        let body = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]
        return try #require(body?["access_token"] as? String)
    }

    /// `user_cache_lookups_total{result="hit"}` of one replica.
    static func cacheHits(_ base: String) async throws -> Int {
        let metrics = try await curl(.get, "\(base)/metrics").body
        return metrics.split(separator: "\n")
            .filter { $0.hasPrefix("\(MetricNames.userCacheLookups){") && $0.contains(#"result="hit""#) }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }.reduce(0, +)
    }

    /// Requests through `replica` until its cache answers them (it listens, and holds the user).
    static func warm(_ replica: Replica, token: String) async throws {
        let before = try await cacheHits(replica.base)
        for _ in 0..<100 {
            let answer = try await curl(.get, "\(replica.base)/booking?limit=1", token: token)
            try #require(answer.status == 200, "\(answer.body)")
            if try await cacheHits(replica.base) > before { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("the replica's cache never answered: the test would prove nothing")
    }

    @Test func aPasswordRoleOrDisabledChangeThroughOneReplicaIsRefusedOnTheNextRequestThroughTheOther() async throws {
        let database = try await TestDatabase.create()
        let app = try await TestApp.make(database: database)
        try await app.createUser("ada", role: .admin)
        try await app.createUser("rita", role: .requester)
        try await app.createUser("rex", role: .requester)
        let replicas = try await Self.startReplicas(database)
        defer { for replica in replicas { replica.server.signal(SIGKILL) } }
        let (a, b) = (replicas[0], replicas[1])
        let admin = try await Self.accessToken(a.base, "ada", "correct horse battery")

        // Password: changed through A, the old token is refused through B at once.
        let rita = try await Self.accessToken(a.base, "rita", "correct horse battery")
        try await Self.warm(b, token: rita)
        let changed = try await Self.curl(
            .post, "\(a.base)/me/password", token: rita,
            json: #"{"current_password": "correct horse battery", "new_password": "rita has a new passphrase"}"#
        )
        #expect(changed.status == 200, "\(changed.body)")
        #expect(try await Self.curl(.get, "\(b.base)/booking?limit=1", token: rita).status == 401)

        // Disabled by an admin through A: refused through B.
        let rex = try await Self.accessToken(a.base, "rex", "correct horse battery")
        try await Self.warm(b, token: rex)
        let rexID = try #require(try await database.scalar("SELECT id FROM users WHERE username = 'rex'", as: Int64.self))
        #expect(try await Self.curl(.patch, "\(a.base)/users/\(rexID)", token: admin, json: #"{"disabled": true}"#).status == 200)
        #expect(try await Self.curl(.get, "\(b.base)/booking?limit=1", token: rex).status == 401)

        // Role: re-enabled as an admin through A; the requester token is refused through B.
        let rexAgain = try await Self.curl(.patch, "\(a.base)/users/\(rexID)", token: admin, json: #"{"disabled": false}"#)
        #expect(rexAgain.status == 200)
        let rex2 = try await Self.accessToken(a.base, "rex", "correct horse battery")
        try await Self.warm(b, token: rex2)
        #expect(try await Self.curl(.patch, "\(a.base)/users/\(rexID)", token: admin, json: #"{"role": "admin"}"#).status == 200)
        #expect(try await Self.curl(.get, "\(b.base)/booking?limit=1", token: rex2).status == 401)
    }

    @Test func withTheNotificationConnectionCutAChangeIsStillRefused() async throws {
        let database = try await TestDatabase.create()
        let app = try await TestApp.make(database: database)
        try await app.createUser("rita", role: .requester)
        let replicas = try await Self.startReplicas(database)
        defer { for replica in replicas { replica.server.signal(SIGKILL) } }
        let (a, b) = (replicas[0], replicas[1])
        let rita = try await Self.accessToken(a.base, "rita", "correct horse battery")
        try await Self.warm(b, token: rita)

        // Every replica's notification connection is cut; the change commits while none listens
        // (they reconnect after a second), so its notification reaches no one.
        let cut = try await database.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND application_name = '\(UserChangeListener.applicationName)'",
            as: Int.self
        )
        #expect(cut == 2)
        let changed = try await Self.curl(
            .post, "\(a.base)/me/password", token: rita,
            json: #"{"current_password": "correct horse battery", "new_password": "rita has a new passphrase"}"#
        )
        #expect(changed.status == 200, "\(changed.body)")
        #expect(try await Self.curl(.get, "\(b.base)/booking?limit=1", token: rita).status == 401)

        // Listening again (a new connection), B caches again and still hears changes.
        let fresh = try await Self.accessToken(a.base, "rita", "rita has a new passphrase")
        try await Self.warm(b, token: fresh)
        let again = try await Self.curl(
            .post, "\(a.base)/me/password", token: fresh,
            json: #"{"current_password": "rita has a new passphrase", "new_password": "rita's third passphrase"}"#
        )
        #expect(again.status == 200, "\(again.body)")
        #expect(try await Self.curl(.get, "\(b.base)/booking?limit=1", token: fresh).status == 401)
    }
}
