import Foundation
@testable import BookingAPI

#if canImport(Glibc)
import Glibc
#endif

/// The result of running one of the built executables.
struct ProcessResult: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String

    var output: String { stdout + stderr }
}

/// Runs `program` from the build directory (or an absolute path) with `environment` added to
/// a minimal one, feeding `input` to its standard input.
///
/// posix_spawn and waitpid on a thread of its own, not Foundation's Process: on Linux its exit
/// monitoring missed children that start daemons (pg_ctl start), and blocking the cooperative
/// pool (2 threads here) would starve every other test. Output goes to files, which a daemon
/// cannot hold open the way it holds a pipe.
func runProgram(
    _ program: String,
    _ arguments: [String],
    environment: [String: String] = [:],
    input: String? = nil
) async throws -> ProcessResult {
    let path = program.hasPrefix("/") ? program : "\(TestEnvironment.binDirectory)/\(program)"
    var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
    env.merge(environment) { _, new in new }
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("proc-\(UUID().uuidString)").path
    let inPath = scratch + ".in", outPath = scratch + ".out", errPath = scratch + ".err"
    FileManager.default.createFile(atPath: inPath, contents: Data((input ?? "").utf8))
    defer {
        for file in [inPath, outPath, errPath] { try? FileManager.default.removeItem(atPath: file) }
    }
    let argv = [path] + arguments
    let envp = env.map { "\($0.key)=\($0.value)" }

    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            var cArgs = argv.map { strdup($0) } + [nil]
            var cEnv = envp.map { strdup($0) } + [nil]
            defer {
                cArgs.forEach { free($0) }
                cEnv.forEach { free($0) }
            }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, path, &actions, nil, &cArgs, &cEnv)
            guard spawned == 0 else {
                continuation.resume(throwing: TestSetupError("cannot start \(path): \(String(cString: strerror(spawned)))"))
                return
            }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS, spelled out: the C macros do not import.
            let exitStatus = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            continuation.resume(returning: exitStatus)
        }
    }
    let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return ProcessResult(status: status, stdout: out, stderr: err)
}

/// A copy of the shipped migrations in a temporary directory that a test may change.
func copyOfMigrations() throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for name in try FileManager.default.contentsOfDirectory(atPath: TestEnvironment.migrationsDirectory) where name.hasSuffix(".sql") {
        try FileManager.default.copyItem(atPath: "\(TestEnvironment.migrationsDirectory)/\(name)", toPath: "\(directory)/\(name)")
    }
    return directory
}

/// A program left running in the background, for tests that signal it.
struct BackgroundProgram: Sendable {
    let pid: pid_t
    let outputPath: String

    static func start(_ program: String, _ arguments: [String], environment: [String: String]) throws -> BackgroundProgram {
        let path = program.hasPrefix("/") ? program : "\(TestEnvironment.binDirectory)/\(program)"
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        env.merge(environment) { _, new in new }
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("bg-\(UUID().uuidString).log").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArgs = ([path] + arguments).map { strdup($0) } + [nil]
        var cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, &cArgs, &cEnv)
        guard result == 0 else { throw TestSetupError("cannot start \(path)") }
        return BackgroundProgram(pid: pid, outputPath: outputPath)
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits for the exit on a thread of its own; returns the exit status.
    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
                continuation.resume(returning: (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f))
            }
        }
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
}

/// A free TCP port on loopback (bound, read, released).
func freePort() async throws -> Int {
    let result = try await runProgram(
        "/usr/bin/env", ["python3", "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"]
    )
    guard let port = Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestSetupError("no free port") }
    return port
}

/// The version after the highest shipped migration, and the one after that ("0005", "0006", …),
/// so tests that add files keep working as migrations are added.
func nextMigrationVersion(_ offset: Int = 1) throws -> String {
    let highest = try MigrationDirectory.load(TestEnvironment.migrationsDirectory).files.compactMap { Int($0.version) }.max() ?? 0
    return String(format: "%04d", highest + offset)
}
