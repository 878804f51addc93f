import Crypto
import Foundation
import Testing

@testable import BookingAPI

@Suite struct ConfigurationTests {
    let url = "postgres://app:pw@127.0.0.1:5432/booking?sslmode=disable"

    func load(_ values: [String: String]) -> Result<AppConfiguration, ConfigurationError> {
        Result { () throws(ConfigurationError) in try AppConfiguration.load(from: EnvironmentReader(values)) }
    }

    func failure(_ values: [String: String]) -> ConfigurationError? {
        if case .failure(let error) = load(values) { return error }
        return nil
    }

    @Test func defaults() throws {
        let configuration = try load(["DATABASE_URL": url]).get()
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.environment == .dev)
        #expect(configuration.tokens.issuer == "booking-api")
        #expect(configuration.tokens.audience == "booking-api")
        #expect(configuration.tokens.lifetimeSeconds == 900)
        #expect(configuration.migrationsDirectory == "Migrations")
        #expect(configuration.hashing.memoryKiB >= 19456)
    }

    @Test func eachProblemNamesItsVariable() {
        #expect(failure([:])?.variable == "DATABASE_URL")
        #expect(failure(["DATABASE_URL": "mysql://x@y/z"])?.variable == "DATABASE_URL")
        #expect(failure(["DATABASE_URL": url, "PORT": "eighty"])?.variable == "PORT")
        #expect(failure(["DATABASE_URL": url, "APP_ENV": "staging"])?.variable == "APP_ENV")
        #expect(failure(["DATABASE_URL": url, "ACCESS_TOKEN_TTL_SECONDS": "-1"])?.variable == "ACCESS_TOKEN_TTL_SECONDS")
        #expect(failure(["DATABASE_URL": url, "JWT_PRIVATE_KEY": "not a pem"])?.variable == "JWT_PRIVATE_KEY")
        #expect(failure(["DATABASE_URL_FILE": "/nonexistent/file"])?.variable == "DATABASE_URL_FILE")
        #expect(failure(["DATABASE_URL": url, "JWT_PUBLIC_KEYS": "/nonexistent.pem"])?.variable == "JWT_PUBLIC_KEYS")
        // A malformed URL's message never repeats the password.
        let bad = failure(["DATABASE_URL": "postgres://app:hunter2hunter2@/"])
        #expect(bad?.variable == "DATABASE_URL")
        #expect(bad?.description.contains("hunter2hunter2") == false)
    }

    @Test func secretsFromFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = Curve25519.Signing.PrivateKey()
        try key.pemRepresentation.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try "\(url)\n".write(to: directory.appendingPathComponent("url"), atomically: true, encoding: .utf8)
        let configuration = try load([
            "DATABASE_URL_FILE": directory.appendingPathComponent("url").path,
            "JWT_PRIVATE_KEY_FILE": directory.appendingPathComponent("key.pem").path,
        ]).get()
        #expect(configuration.database.password == "pw")
        #expect(configuration.tokens.signingKey.publicKey.rawRepresentation == key.publicKey.rawRepresentation)
        #expect(!configuration.tokens.isDevelopmentKey)
    }

    @Test func prodRefusesMissingOrDevelopmentKeys() throws {
        #expect(failure(["DATABASE_URL": url, "APP_ENV": "prod"])?.variable == "JWT_PRIVATE_KEY")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("x-\(UUID())/\(TokenConfiguration.developmentKeyDirectory)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("jwt-private.pem").path
        try Curve25519.Signing.PrivateKey().pemRepresentation.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(failure(["DATABASE_URL": url, "APP_ENV": "prod", "JWT_PRIVATE_KEY_FILE": path])?.variable == "JWT_PRIVATE_KEY_FILE")
        // dev accepts the same key.
        #expect(throws: Never.self) { try load(["DATABASE_URL": url, "JWT_PRIVATE_KEY_FILE": path]).get() }
    }

    @Test func databaseURLDescriptionHidesThePassword() throws {
        let parsed = try DatabaseURL("postgres://app:topsecret@db.internal:6543/booking")
        #expect(parsed.port == 6543)
        #expect(parsed.description == "postgres://app:***@db.internal:6543/booking")
        let socket = try DatabaseURL("postgres://app@/booking?host=/var/run/postgresql&port=5433")
        #expect(socket.socketDirectory == "/var/run/postgresql")
        #expect(socket.clientConfiguration.unixSocketPath == "/var/run/postgresql/.s.PGSQL.5433")
    }

    @Test func everyExecutableAnswersHelp() async throws {
        for program in ["booking-server", "migration-runner", "manage-passwords"] {
            let help = try await runProgram(program, ["--help"])
            #expect(help.status == 0, "\(program)")
            #expect(help.output.contains("USAGE"), "\(program)")
        }
        #expect(try await runProgram("booking-server", ["--help"]).output.contains("DATABASE_URL"))
    }

    @Test func serverStopsWithOneLineNamingTheVariable() async throws {
        let result = try await runProgram("booking-server", [], environment: ["DATABASE_URL": url, "PORT": "99999"])
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.stderr.contains("PORT"))
    }
}
