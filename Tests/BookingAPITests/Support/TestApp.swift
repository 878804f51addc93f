import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import BookingAPI

/// The application under test, built by the same `buildApplication` as the server.
struct TestApp {
    let database: TestDatabase
    var configuration: AppConfiguration

    static func make(
        database: TestDatabase? = nil,
        migrationsDirectory: String = TestEnvironment.migrationsDirectory,
        configure: (inout AppConfiguration) -> Void = { _ in }
    ) async throws -> TestApp {
        // Before any request: request metric handles are made once and kept.
        _ = metricsBootstrap
        let resolved: TestDatabase
        if let database { resolved = database } else { resolved = try await TestDatabase.create() }
        var configuration = AppConfiguration(
            environment: .test,
            port: 0,
            database: resolved.url,
            migrationsDirectory: migrationsDirectory,
            tokens: TokenConfiguration(signingKey: Curve25519.Signing.PrivateKey()),
            hashing: PasswordHashingConfiguration(threads: 2, queueLimit: 64),
            logLevel: .warning,
            loginThrottleBaseSeconds: 1,
            databasePoolSize: 3
        )
        configure(&configuration)
        return TestApp(database: resolved, configuration: configuration)
    }

    func test<T: Sendable>(_ mode: TestingSetup = .router, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        let app = try await buildApplication(configuration, logger: TestEnvironment.logger)
        return try await app.test(mode) { client in try await body(client) }
    }

    /// Creates (or replaces) a user directly through the store, as manage-passwords does.
    @discardableResult
    func createUser(_ username: String, role: Role, password: String = "correct horse battery") async throws -> UserRecord {
        let hasher = PasswordHasher(configuration: configuration.hashing)
        defer { Task { try? await hasher.shutdown() } }
        return try await database.withDatabase { database in
            _ = try await AccountService(database: database, hasher: hasher)
                .setPassword(username: username, role: role, password: password, actor: .managePasswords, logger: TestEnvironment.logger)
            guard let user = try await PostgresUserStore(database: database).find(username: username, logger: TestEnvironment.logger) else {
                throw TestSetupError("\(username) was not created")
            }
            return user
        }
    }
}

struct TestResponseBody {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let data: Data

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    var text: String { String(decoding: data, as: UTF8.self) }
}

extension TestClientProtocol {
    /// One request; JSON bodies are serialised from `json`.
    @discardableResult
    func send(
        _ method: HTTPRequest.Method,
        _ uri: String,
        token: String? = nil,
        json: Any? = nil,
        body: String? = nil,
        contentType: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestResponseBody {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var buffer: ByteBuffer?
        if let json {
            buffer = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
            headers[.contentType] = contentType ?? "application/json"
        } else if let body {
            buffer = ByteBuffer(string: body)
            if let contentType { headers[.contentType] = contentType }
        }
        return try await execute(uri: uri, method: method, headers: headers, body: buffer) { response in
            TestResponseBody(status: response.status, headers: response.headers, data: Data(buffer: response.body))
        }
    }

    /// Logs in and returns the access token.
    func token(_ username: String, _ password: String = "correct horse battery") async throws -> String {
        let response = try await send(.post, "/token", body: "username=\(username)&password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", contentType: "application/x-www-form-urlencoded")
        guard response.status == .ok, let token = response.json["access_token"] as? String else {
            throw TestSetupError("login of \(username) failed: \(response.status) \(response.text)")
        }
        return token
    }
}

/// A valid booking body, `days` from now, that individual tests adjust.
func bookingBody(topic: String = "Team offsite", hoursFromNow: Double = 24 * 30, duration: Int = 60, country: String = "Japan") -> [String: Any] {
    let formatter = ISO8601DateFormatter()
    return [
        "topic": topic,
        "event_time": formatter.string(from: Date().addingTimeInterval(hoursFromNow * 3600)),
        "duration_minutes": duration,
        "address": ["street": "1 Chome", "city": "Tokyo", "state": NSNull(), "country": country],
        "requested_by": "organiser@example.com",
    ]
}
