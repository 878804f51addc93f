import ArgumentParser
import BookingAPI
import Foundation

@main
struct ManagePasswordsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manage-passwords",
        abstract: "Provisions users and rotates their passwords.",
        discussion: """
            Reads DATABASE_URL (or DATABASE_URL_FILE). Passwords are hashed with argon2id. Every \
            change of password, role or disabled flag revokes the user's tokens. Exit 0 on success, \
            1 on any error; nothing is changed by a command that fails.
            """,
        subcommands: [Set.self, Rotate.self, Disable.self, Enable.self, List.self, HashBenchmark.self]
    )
}

func runCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        CommandSupport.fail("manage-passwords", CommandSupport.describe(error))
        throw ExitCode(1)
    }
}

extension ManagePasswordsCommand {
    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user or replace its password (and role when given).")
        @Argument(help: "The username.") var username: String
        @Option(help: "admin or requester; required when creating a user.") var role: String?
        @Flag(help: "Read the password (12–1024 characters) from standard input.") var passwordStdin = false
        @Flag(help: "Generate a random 24-character password and print it once.") var generate = false
        @Option(help: "With --generate: write the password to this new file (mode 0600) instead of stdout.") var outputFile: String?

        func validate() throws {
            guard passwordStdin != generate else { throw ValidationError("give exactly one of --password-stdin and --generate") }
            if outputFile != nil, !generate { throw ValidationError("--output-file goes with --generate") }
            if let role, Role(rawValue: role) == nil { throw ValidationError("--role must be admin or requester") }
            if let problem = UsernamePolicy.check(username) { throw ValidationError(problem) }
        }

        func run() async throws {
            try await runCommand {
                let role = self.role.flatMap(Role.init(rawValue:))
                let password: String
                if generate {
                    password = PasswordPolicy.generate()
                } else {
                    let input = FileHandle.standardInput.readDataToEndOfFile()
                    var text = String(decoding: input, as: UTF8.self)
                    if text.hasSuffix("\n") { text.removeLast() }
                    if text.hasSuffix("\r") { text.removeLast() }
                    if let problem = PasswordPolicy.check(text, username: username) { throw CommandError("the password \(problem)") }
                    password = text
                }
                let file = try outputFile.map(CommandSupport.createPrivateFile)
                do {
                    let (user, created) = try await UserAdministration.run { admin in
                        try await admin.setPassword(username: username, role: role, password: password)
                    }
                    if let file {
                        try file.write(contentsOf: Data("\(password)\n".utf8))
                        try file.close()
                    } else if generate {
                        print(password)
                    }
                    let summary = created
                        ? "created \(user.username) (\(user.role.rawValue))"
                        : "updated \(user.username) (\(user.role.rawValue)); earlier tokens are revoked"
                    FileHandle.standardError.write(Data("\(summary)\n".utf8))
                } catch {
                    if let outputFile { try? FileManager.default.removeItem(atPath: outputFile) }
                    throw error
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rotate many passwords in one transaction (all or nothing).")
        @Option(help: "CSV of username,role lines.") var file: String
        @Option(help: "New file (mode 0600) that receives username,password lines.") var outputFile: String

        func run() async throws {
            try await runCommand {
                guard let data = FileManager.default.contents(atPath: file) else { throw CommandError("cannot read \(file)") }
                let entries = try RotationFile.parse(String(decoding: data, as: UTF8.self))
                let output = try CommandSupport.createPrivateFile(outputFile)
                do {
                    let passwords = try await UserAdministration.run { admin in try await admin.rotate(entries) }
                    let lines = passwords.map { "\($0.username),\($0.password)\n" }.joined()
                    try output.write(contentsOf: Data(lines.utf8))
                    try output.close()
                    FileHandle.standardError.write(Data("rotated \(passwords.count) users; new passwords are in \(outputFile)\n".utf8))
                } catch {
                    try? FileManager.default.removeItem(atPath: outputFile)
                    throw error
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user and revoke its tokens.")
        @Argument var username: String
        func run() async throws {
            try await runCommand {
                let username = self.username
                _ = try await UserAdministration.run { admin in try await admin.setDisabled(username: username, disabled: true) }
                FileHandle.standardError.write(Data("disabled \(username)\n".utf8))
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a user (its old tokens stay revoked).")
        @Argument var username: String
        func run() async throws {
            try await runCommand {
                let username = self.username
                _ = try await UserAdministration.run { admin in try await admin.setDisabled(username: username, disabled: false) }
                FileHandle.standardError.write(Data("enabled \(username)\n".utf8))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users: username, role, disabled, last password change. Never hashes.")
        func run() async throws {
            try await runCommand {
                let users = try await UserAdministration.run { admin in try await admin.list() }
                print(UserAdministration.table(users))
            }
        }
    }

    struct HashBenchmark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash-benchmark",
            abstract: "Measure argon2id hashes per second with the configured parameters on all hash threads (no database)."
        )
        @Option(help: "How long to measure.") var seconds = 5

        func run() async throws {
            try await runCommand {
                let hasher = PasswordHasher(configuration: try PasswordHashingConfiguration.load(from: EnvironmentReader()))
                let rate = try await hasher.benchmark(seconds: seconds)
                try await hasher.shutdown()
                print(String(format: "hashes_per_second=%.2f threads=%d memory_kib=%d iterations=%d",
                    rate, hasher.configuration.threads, hasher.configuration.memoryKiB, hasher.configuration.iterations))
            }
        }
    }
}
