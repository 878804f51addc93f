import ArgumentParser
import BookingAPI
import Foundation

@main
struct MigrationRunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migration-runner",
        abstract: "Applies and checks the versioned SQL files in Migrations/.",
        discussion: """
            Reads DATABASE_URL (or DATABASE_URL_FILE). Exit codes: 0 done or up to date; 1 error \
            (a file failed, the database is unreachable, the lock timed out); 3 migrations pending; \
            4 drift (an applied file changed or is missing).
            """,
        subcommands: [Up.self, Status.self, Verify.self, New.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Directory of NNNN_description.sql files.")
    var migrationsDir = "Migrations"
}

/// Runs a command body, mapping failures to a stderr line and exit code 1.
func runCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as MigrationError {
        CommandSupport.fail("migration-runner", error.description)
        if case .drift = error { throw ExitCode(4) }
        throw ExitCode(1)
    } catch {
        CommandSupport.fail("migration-runner", CommandSupport.describe(error))
        throw ExitCode(1)
    }
}

extension MigrationRunnerCommand {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply every pending file, in version order.")
        @OptionGroup var common: CommonOptions
        @Flag(help: "Print what would run; change nothing.") var dryRun = false
        @Option(help: "Seconds to wait for another runner's lock.") var lockTimeout = 60

        func run() async throws {
            try await runCommand {
                let directory = try MigrationDirectory.load(common.migrationsDir)
                let url = try CommandSupport.databaseURL()
                let logger = CommandSupport.logger("migration-runner")
                let dryRun = self.dryRun
                let timeout = Duration.seconds(lockTimeout)
                let files = try await withPostgresClient(url, logger: logger) { client in
                    try await MigrationRunner(client: client, logger: logger).up(directory, dryRun: dryRun, lockTimeout: timeout) { file, elapsed in
                        print("applied \(file.version)_\(file.name) (\(elapsed.formatted(.units(allowed: [.milliseconds]))))")
                    }
                }
                if dryRun {
                    print(files.isEmpty ? "nothing to apply" : files.map { "would apply \($0.version)_\($0.name)" }.joined(separator: "\n"))
                } else if files.isEmpty {
                    print("up to date")
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List applied and pending files. Exit 0 current, 3 pending, 4 drift.")
        @OptionGroup var common: CommonOptions
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            var exitCode: Int32 = 0
            try await runCommand {
                let report = try await loadReport(common.migrationsDir)
                print(json ? StatusFormatter.json(report) : StatusFormatter.table(report))
                exitCode = !report.drift.isEmpty ? 4 : (!report.pending.isEmpty ? 3 : 0)
            }
            if exitCode != 0 { throw ExitCode(exitCode) }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check applied checksums only. Exit 0 or 4.")
        @OptionGroup var common: CommonOptions

        func run() async throws {
            var drift: [String] = []
            try await runCommand {
                let report = try await loadReport(common.migrationsDir)
                drift = report.drift
                print(drift.isEmpty ? "checksums match" : "drift: \(drift.joined(separator: ", "))")
            }
            if !drift.isEmpty { throw ExitCode(4) }
        }
    }

    struct New: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the next-numbered empty migration file.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "What the migration does, e.g. add_booking_index.") var name: String

        func run() async throws {
            try await runCommand {
                let directory = try MigrationDirectory.load(common.migrationsDir)
                print(try directory.createNext(named: name))
            }
        }
    }
}

func loadReport(_ path: String) async throws -> MigrationReport {
    let directory = try MigrationDirectory.load(path)
    let url = try CommandSupport.databaseURL()
    let logger = CommandSupport.logger("migration-runner")
    return try await withPostgresClient(url, logger: logger) { client in
        try await MigrationRunner(client: client, logger: logger).report(for: directory)
    }
}
