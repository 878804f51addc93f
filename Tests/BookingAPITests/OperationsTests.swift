import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

@testable import BookingAPI

/// swift-metrics may be bootstrapped once per process; every test that reads /metrics uses this.
let metricsBootstrap: Void = bootstrapMetrics()

@Suite struct OpenAPITests {
    @Test func everyRouteIsDocumentedAndEveryDocumentedPathIsRouted() async throws {
        let app = try await TestApp.make()
        let services = try await AppServices(app.configuration, logger: TestEnvironment.logger)
        let router = buildRouter(services)
        var routed = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description)" })
        // Every GET answers HEAD too (ProblemMiddleware), and the document says so.
        for route in router.routes where route.method == .get { routed.insert("HEAD \(route.path.description)") }

        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data) as? [String: Any])
        #expect(document["openapi"] as? String == "3.1.0")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, operations) in paths {
            for method in operations.keys { documented.insert("\(method.uppercased()) \(path)") }
        }
        #expect(routed.subtracting(documented).isEmpty, "routes without documentation: \(routed.subtracting(documented))")
        #expect(documented.subtracting(routed).isEmpty, "documented but not routed: \(documented.subtracting(routed))")

        try await app.test { client in
            let served = try await client.send(.get, "/openapi.json")
            #expect(served.status == .ok)
            #expect(served.data == OpenAPIDocument.data)
        }
    }

    @Test func protectedOperationsDeclareBearerSecurity() throws {
        let document = try #require(try JSONSerialization.jsonObject(with: OpenAPIDocument.data) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
        let publicPaths: Set<String> = ["/token", "/token/revoke", "/.well-known/jwks.json", "/ping", "/healthz", "/metrics", "/openapi.json", "/calendar-feeds/{secret}.ics", "/", "/app", "/app/{file}"]
        for (path, operations) in paths {
            for (method, operation) in operations {
                let secured = operation["security"] != nil
                #expect(secured == !publicPaths.contains(path), "\(method) \(path)")
            }
        }
    }
}

@Suite struct MetricsTests {
    @Test func exportsRequestLoginHashAndSchemaMetrics() async throws {
        _ = metricsBootstrap
        let app = try await TestApp.make()
        try await app.createUser("mia", role: .admin)
        try await app.test { client in
            let token = try await client.token("mia")
            _ = try await client.send(.post, "/token", json: ["username": "mia", "password": "wrong password!"])
            _ = try await client.send(.get, "/booking/12345", token: token)
            _ = try await client.send(.get, "/ping")
            let metrics = try await client.send(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = metrics.text
            #expect(text.contains(#"http_requests_total{method="GET",route="/booking/{id}",status="404"}"#), "\(text.prefix(2000))")
            #expect(!text.contains("/booking/12345"), "raw paths must not become labels")
            #expect(text.contains("http_request_duration_seconds_bucket"))
            #expect(text.contains(#"login_attempts_total{outcome="success"}"#))
            #expect(text.contains(#"login_attempts_total{outcome="bad_credentials"}"#))
            #expect(text.contains("password_hash_queue_depth"))
            #expect(text.contains("password_hash_wait_seconds"))
            #expect(text.contains("schema_migrations_current 1"))
            #expect(text.contains("# TYPE db_pool_connections_in_use gauge"))
        }
    }
}

@Suite struct PoolUsageTests {
    @Test func leasesAreCountedWhileHeld() async throws {
        let database = try await TestDatabase.create(migrated: false)
        let held = try await database.withDatabase { database in
            try await database.withConnection(logger: TestEnvironment.logger) { _ in PoolUsage.inUse.load(ordering: .relaxed) }
        }
        // Other tests lease at the same time, so only a lower bound is certain.
        #expect(held >= 1)
    }
}

/// Collects every log line in memory.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    func handler(label: String) -> some LogHandler { Handler(label: label, capture: self) }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let label: String
        let capture: LogCapture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
        }
    }
}

@Suite struct LoggingTests {
    @Test func logsNeverCarrySecrets() async throws {
        let capture = LogCapture()
        let logger = Logger(label: "booking-api") { capture.handler(label: $0) }
        let app = try await TestApp.make()
        let user = try await app.createUser("noah", role: .admin, password: "Sup3r-Secret-Passw0rd")
        let built = try await buildApplication(app.configuration, logger: logger)
        let (token, serverError) = try await built.test(.router) { client in
            let token = try await client.token("noah", "Sup3r-Secret-Passw0rd")
            _ = try await client.send(.post, "/token", json: ["username": "noah", "password": "Wr0ng-Secret-Passw0rd"])
            _ = try await client.send(.get, "/me", token: token)
            // A 500: a statement fails for a reason no layer expects (a missing table would be a
            // 503, "schema not current"). A row-level policy that raises does it.
            _ = try await client.send(.post, "/booking", token: token, json: bookingBody())
            try await app.database.execute("CREATE FUNCTION explode() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'kaboom in bookings'; END $$")
            try await app.database.execute("ALTER TABLE bookings ENABLE ROW LEVEL SECURITY")
            try await app.database.execute("ALTER TABLE bookings FORCE ROW LEVEL SECURITY")
            try await app.database.execute("CREATE POLICY explode ON bookings USING (explode())")
            let serverError = try await client.send(.get, "/booking", token: token, headers: [.init("X-Request-ID")!: "trace-500"])
            return (token, serverError)
        }
        #expect(serverError.status == .internalServerError)
        #expect(!serverError.text.contains("bookings"))
        #expect(!serverError.text.contains("SELECT"))
        #expect(serverError.headers[.contentType] == "application/problem+json")

        let logs = capture.text
        #expect(logs.contains("trace-500"), "the 500 is logged under its request id")
        #expect(logs.contains("P0001"), "the 500's cause is in the log")
        #expect(logs.contains("user_id"), "authenticated requests carry the user id")
        for secret in ["Sup3r-Secret-Passw0rd", "Wr0ng-Secret-Passw0rd", user.passwordHash, "$argon2id$", token, try #require(app.database.url.password)] {
            #expect(!logs.contains(secret), "a secret reached the log")
        }
    }

    @Test func jsonLinesCarryMessageAndMetadata() throws {
        let written = Mutex<[Data]>([])
        var logger = Logger(label: "json-test") { label in
            JSONLogHandler(label: label) { data in written.withLock { $0.append(data) } }
        }
        logger[metadataKey: "request_id"] = "abc"
        logger.info("request", metadata: ["status": .stringConvertible(200)])
        let lines = written.withLock { $0 }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.last == 0x0A)
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["message"] as? String == "request")
        #expect(object["level"] as? String == "info")
        #expect(object["request_id"] as? String == "abc")
        #expect(object["status"] as? String == "200")
        #expect(object["ts"] is String)
    }
}
