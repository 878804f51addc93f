// The floor peer of scripts/bench: TechEmpower's test type 2 ("single database query") on
// Hummingbird 2 and postgres-nio, nothing more, so the service's GET /booking/{id} can be read as
// a ratio to what the same framework and driver do with one row and no auth.
//   GET /db → one World row by a random id in 1...10000, as {"id":…,"randomNumber":…}
// DATABASE_URL (postgres://user:password@host:port/database) and PORT come from the environment.
import Foundation
import Hummingbird
import PostgresNIO

let environment = ProcessInfo.processInfo.environment
guard let databaseURL = environment["DATABASE_URL"].flatMap(URLComponents.init(string:)),
    let host = databaseURL.host, let user = databaseURL.user
else {
    fatalError("bench-peer: DATABASE_URL must be postgres://user:password@host:port/database")
}
var postgres = PostgresClient.Configuration(
    host: host,
    port: databaseURL.port ?? 5432,
    username: user,
    password: databaseURL.password,
    database: String(databaseURL.path.dropFirst()),
    tls: .disable
)
// As the TechEmpower implementation: a pool left at its defaults except a high maximum, so that
// every wrk connection can have its own database connection.
postgres.options.maximumConnections = 200
let client = PostgresClient(configuration: postgres)

let router = Router()
router.get("db") { _, _ -> World in
    let id = Int32.random(in: 1...10_000)
    for try await world in try await client.execute(SelectWorld(id: id)) {
        return world
    }
    throw HTTPError(.notFound)
}

var app = Application(
    router: router,
    configuration: .init(
        address: .hostname("127.0.0.1", port: environment["PORT"].flatMap { Int($0) } ?? 8080),
        serverName: "bench-peer"  // the test requires a Server header; Hummingbird adds Date
    )
)
app.addServices(client)
try await app.runService()
