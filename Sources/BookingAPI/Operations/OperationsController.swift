import Foundation
import Hummingbird
import Prometheus

/// `/ping` (readiness) and `/healthz` (liveness). Public by design: probes carry no token.
struct OperationsController {
    let readiness: Readiness

    struct MigrationsBody: Codable, Equatable {
        let current: String?
        let latest: String?
        let pending: [String]
        let drift: [String]
    }

    struct PingBody: ResponseEncodable {
        let message: String
        let database: String
        let migrations: MigrationsBody
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("ping") { _, _ in try await self.ping() }
        group.get("healthz") { _, _ in ["status": "ok"] }
        group.get("openapi.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.data))
            )
        }
        group.get("metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metricsRegistry.emitToBuffer()))
            )
        }
    }

    func ping() async throws -> PingBody {
        switch await readiness.check() {
        case .ready(let report):
            return PingBody(message: "ok", database: "ok", migrations: Self.body(report))
        case .notCurrent(let report):
            let migrations = Self.body(report)
            throw ProblemError.unavailable(
                "Applied migrations do not match the ones this release ships",
                retryAfter: 5,
                extensions: [
                    "message": .string("Database is not up-to-date yet"),
                    "database": .string("ok"),
                    "migrations": Self.json(migrations),
                ]
            )
        case .unreachable:
            throw ProblemError.unavailable(
                "PostgreSQL did not answer in time",
                retryAfter: 5,
                extensions: ["message": .string("Database unreachable"), "database": .string("unreachable")]
            )
        case .noMigrations(let reason):
            throw ProblemError.unavailable(
                "The release's migrations cannot be read: \(reason)",
                retryAfter: 5,
                extensions: ["message": .string("Database is not up-to-date yet"), "database": .string("unknown")]
            )
        }
    }

    static func body(_ report: MigrationReport) -> MigrationsBody {
        MigrationsBody(current: report.current, latest: report.latest, pending: report.pending, drift: report.drift)
    }

    static func json(_ body: MigrationsBody) -> JSONValue {
        .object([
            "current": body.current.map(JSONValue.string) ?? .null,
            "latest": body.latest.map(JSONValue.string) ?? .null,
            "pending": .array(body.pending.map(JSONValue.string)),
            "drift": .array(body.drift.map(JSONValue.string)),
        ])
    }
}

/// The OpenAPI 3.1 description, kept in `Resources/openapi.json` as the one source; a test
/// checks it against the router.
enum OpenAPIDocument {
    static let data: Data = {
        guard let data = load() else { fatalError("openapi.json is missing from the BookingAPI bundle") }
        return data
    }()

    /// nil when the resource bundle was not deployed beside the executable.
    static func load() -> Data? {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else { return nil }
        return try? Data(contentsOf: url)
    }
}
