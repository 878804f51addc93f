import Foundation
import Testing

@testable import BookingAPI

@Suite struct ManagePasswordsTests {
    func env(_ database: TestDatabase) -> [String: String] { ["DATABASE_URL": database.connectionString] }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)").path
    }

    @Test func setCreatesUpdatesAndValidates() async throws {
        let app = try await TestApp.make()
        let env = env(app.database)
        let created = try await runProgram("manage-passwords", ["set", "lena", "--role", "requester", "--password-stdin"], environment: env, input: "twelve chars!!\n")
        #expect(created.status == 0, "\(created.output)")
        #expect(created.stdout.isEmpty)

        let short = try await runProgram("manage-passwords", ["set", "lena", "--password-stdin"], environment: env, input: "short\n")
        #expect(short.status != 0)
        #expect(short.stderr.contains("12"))
        let noRole = try await runProgram("manage-passwords", ["set", "newbie", "--password-stdin"], environment: env, input: "long enough password\n")
        #expect(noRole.status != 0)
        #expect(noRole.stderr.contains("--role"))
        let badRole = try await runProgram("manage-passwords", ["set", "x", "--role", "root", "--generate"], environment: env)
        #expect(badRole.status != 0)
        let both = try await runProgram("manage-passwords", ["set", "x", "--role", "admin", "--generate", "--password-stdin"], environment: env)
        #expect(both.status != 0)
        #expect(try await app.database.scalar("SELECT count(*)::int FROM users", as: Int.self) == 1)

        let generated = try await runProgram("manage-passwords", ["set", "lena", "--generate"], environment: env)
        #expect(generated.status == 0)
        let password = generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(password.count == 24)
        try await app.test { client in
            _ = try await client.token("lena", password)
        }
        #expect(try await runProgram("manage-passwords", ["--help"]).status == 0)
    }

    @Test func generatedPasswordGoesToAPrivateFile() async throws {
        let app = try await TestApp.make()
        let file = temporaryPath("password")
        let result = try await runProgram("manage-passwords", ["set", "max", "--role", "admin", "--generate", "--output-file", file], environment: env(app.database))
        #expect(result.status == 0, "\(result.output)")
        #expect(try mode(file) == 0o600)
        let password = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(password.count == 24)
        #expect(!result.output.contains(password))
        // An existing file is never overwritten.
        let again = try await runProgram("manage-passwords", ["set", "max", "--generate", "--output-file", file], environment: env(app.database))
        #expect(again.status != 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8).contains(password))
    }

    @Test func rotateIsAllOrNothing() async throws {
        let app = try await TestApp.make()
        try await app.createUser("nina", role: .requester)
        try await app.createUser("omar", role: .admin)
        let before = try await app.database.scalar("SELECT string_agg(password_hash, ',' ORDER BY username) FROM users", as: String.self)

        let badCSV = temporaryPath("bad.csv")
        try "nina,requester\nomar,superuser\n".write(toFile: badCSV, atomically: true, encoding: .utf8)
        let badOut = temporaryPath("bad-out")
        let refused = try await runProgram("manage-passwords", ["rotate", "--file", badCSV, "--output-file", badOut], environment: env(app.database))
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("line 2"))
        #expect(!FileManager.default.fileExists(atPath: badOut))
        #expect(try await app.database.scalar("SELECT string_agg(password_hash, ',' ORDER BY username) FROM users", as: String.self) == before)

        let csv = temporaryPath("users.csv")
        try "# rotation\nnina,requester\nomar,admin\npaul,requester\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let out = temporaryPath("out")
        let rotated = try await runProgram("manage-passwords", ["rotate", "--file", csv, "--output-file", out], environment: env(app.database))
        #expect(rotated.status == 0, "\(rotated.output)")
        #expect(try mode(out) == 0o600)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        #expect(lines.map { $0[0] } == ["nina", "omar", "paul"])
        #expect(lines.allSatisfy { $0.count == 2 && $0[1].count == 24 })
        for line in lines { #expect(!rotated.output.contains(line[1])) }
        try await app.test { client in
            for line in lines { _ = try await client.token(line[0], line[1]) }
        }

        // A database failure part-way keeps nothing: a username longer than the column allows
        // passes the CSV check only if the database refuses it, so force one with a trigger.
        try await app.database.execute("""
            CREATE FUNCTION refuse_zed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.username = 'zed' THEN RAISE EXCEPTION 'no zed'; END IF; RETURN NEW; END $$
            """)
        try await app.database.execute("CREATE TRIGGER refuse_zed BEFORE INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse_zed()")
        let middle = try await app.database.scalar("SELECT string_agg(password_hash, ',' ORDER BY username) FROM users", as: String.self)
        let failing = temporaryPath("failing.csv")
        try "nina,requester\nzed,requester\n".write(toFile: failing, atomically: true, encoding: .utf8)
        let failingOut = temporaryPath("failing-out")
        let failed = try await runProgram("manage-passwords", ["rotate", "--file", failing, "--output-file", failingOut], environment: env(app.database))
        #expect(failed.status != 0)
        #expect(!FileManager.default.fileExists(atPath: failingOut))
        #expect(try await app.database.scalar("SELECT string_agg(password_hash, ',' ORDER BY username) FROM users", as: String.self) == middle)
    }

    @Test func listDisableEnableAndNoSecretsInOutput() async throws {
        let app = try await TestApp.make()
        try await app.createUser("quinn", role: .admin)
        let env = env(app.database)
        // The last enabled admin cannot be disabled, here as over HTTP.
        let last = try await runProgram("manage-passwords", ["disable", "quinn"], environment: env)
        #expect(last.status == 1)
        #expect(last.stderr.contains("no enabled admin"), "\(last.stderr)")
        try await app.createUser("rhea", role: .admin)
        #expect(try await runProgram("manage-passwords", ["disable", "quinn"], environment: env).status == 0)
        let missing = try await runProgram("manage-passwords", ["disable", "nobody"], environment: env)
        #expect(missing.status == 1)
        let list = try await runProgram("manage-passwords", ["list"], environment: env)
        #expect(list.status == 0)
        let row = try #require(list.stdout.split(separator: "\n").first { $0.hasPrefix("quinn") })
        #expect(row.contains("admin") && row.contains("yes"))
        #expect(try await runProgram("manage-passwords", ["enable", "quinn"], environment: env).status == 0)
        let after = try await runProgram("manage-passwords", ["list"], environment: env)
        #expect(after.stdout.split(separator: "\n").first { $0.hasPrefix("quinn") }?.contains(" no ") == true)

        let password = try #require(app.database.url.password)
        for result in [list, after, missing] {
            #expect(!result.output.contains("$argon2"))
            #expect(!result.output.contains(password))
        }
        var wrong = app.database.url
        wrong.password = "Not-The-Password-42"
        let badURL = "postgres://\(wrong.username):Not-The-Password-42@\(wrong.host):\(wrong.port)/\(wrong.database)?sslmode=disable"
        let refused = try await runProgram("manage-passwords", ["list"], environment: ["DATABASE_URL": badURL])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("password authentication failed"))
        #expect(!refused.output.contains("Not-The-Password-42"))
    }
}
