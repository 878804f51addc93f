import Foundation

@testable import BookingAPI

/// A PostgreSQL cluster of one test's own, to stop and restart without disturbing the others.
struct PrivateCluster: Sendable {
    let directory: String
    let port: Int
    let password: String

    static let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/pg-cluster").path

    static func start() async throws -> PrivateCluster {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let port = try await freePort()
        let initialised = try await runProgram(script, ["init", directory, String(port)], environment: ["PG_FAST": "1"])
        guard initialised.status == 0 else { throw TestSetupError("initdb failed: \(initialised.output)") }
        // PG_FAST turns fsync and synchronous_commit off. fsync off survives a restart of the
        // server process (the page cache stays), but synchronous_commit off acknowledges commits
        // before their WAL is written, which an immediate restart loses: turn it back on.
        let config = "\(directory)/data/postgresql.conf"
        let appended = try await runProgram("/bin/sh", ["-c", "echo 'synchronous_commit = on' >> \(config)"])
        guard appended.status == 0 else { throw TestSetupError("cannot configure the cluster: \(appended.output)") }
        let cluster = PrivateCluster(directory: directory, port: port, password: UUID().uuidString.replacingOccurrences(of: "-", with: ""))
        try await cluster.run("start")
        // A constant statement with a password made here from a UUID.
        let set = try await runProgram(script, ["psql", directory, "-d", "postgres", "-c", "ALTER ROLE postgres PASSWORD '\(cluster.password)'"])
        guard set.status == 0 else { throw TestSetupError("cannot set the password: \(set.output)") }
        return cluster
    }

    /// Over TCP with a password, as a deployment connects.
    var url: DatabaseURL {
        get throws { try DatabaseURL("postgres://postgres:\(password)@127.0.0.1:\(port)/postgres?sslmode=disable") }
    }

    func run(_ command: String, mode: String = "fast") async throws {
        let result = try await runProgram(Self.script, [command, directory], environment: ["PG_STOP_MODE": mode])
        guard result.status == 0 else { throw TestSetupError("pg-cluster \(command) failed: \(result.output)") }
    }

    /// A restart in `mode`. A fast shutdown waits for every backend to end and for a checkpoint;
    /// on a starved 2-core CI machine that once took longer than pg_ctl's 30 s. What the tests
    /// restart for is the service's behaviour, so such a shutdown is reported with the cluster's
    /// log and finished as a crash (immediate) instead of failing the test.
    func restart(mode: String) async throws {
        do {
            try await run("restart", mode: mode)
        } catch where mode != "immediate" {
            let log = (try? String(contentsOfFile: "\(directory)/log", encoding: .utf8)) ?? ""
            let tail = log.split(separator: "\n").suffix(30).joined(separator: "\n")
            FileHandle.standardError.write(Data("PrivateCluster: \(mode) restart did not finish (\(error)); last lines of its log:\n\(tail)\nrestarting immediately\n".utf8))
            try await run("stop", mode: "immediate")
            try await run("start")
        }
    }

    func remove() async {
        _ = try? await runProgram(Self.script, ["stop", directory], environment: ["PG_STOP_MODE": "immediate"])
        try? FileManager.default.removeItem(atPath: directory)
    }
}
