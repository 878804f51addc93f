import Foundation
import Testing

@testable import BookingAPI

/// `migration-runner`, run as the built executable against real databases.
@Suite struct MigrationRunnerTests {
    func runner(_ database: TestDatabase, _ arguments: [String]) async throws -> ProcessResult {
        try await runProgram("migration-runner", arguments, environment: ["DATABASE_URL": database.connectionString])
    }

    func appliedCount(_ database: TestDatabase) async throws -> Int {
        try await database.scalar("SELECT count(*)::int FROM schema_migrations") ?? -1
    }

    @Test func upAppliesEveryFileThenReportsUpToDate() async throws {
        let database = try await TestDatabase.create(migrated: false)
        let directory = TestEnvironment.migrationsDirectory
        let shipped = try MigrationDirectory.load(directory).files

        let before = try await runner(database, ["status", "--migrations-dir", directory])
        #expect(before.status == 3)

        let up = try await runner(database, ["up", "--migrations-dir", directory])
        #expect(up.status == 0, "\(up.output)")
        #expect(up.stdout.contains("applied 0001_users"))
        #expect(try await appliedCount(database) == shipped.count)

        let again = try await runner(database, ["up", "--migrations-dir", directory])
        #expect(again.status == 0)
        #expect(again.stdout.contains("up to date"))

        let status = try await runner(database, ["status", "--migrations-dir", directory])
        #expect(status.status == 0, "\(status.output)")
        let verify = try await runner(database, ["verify", "--migrations-dir", directory])
        #expect(verify.status == 0)

        // Every applied row records name, checksum and duration.
        let checksum = try await database.scalar("SELECT checksum FROM schema_migrations WHERE version = '0001'", as: String.self)
        #expect(checksum == shipped.first?.checksum)
    }

    @Test func statusReportsPendingAsJSONWithExitThree() async throws {
        let database = try await TestDatabase.create()
        let directory = try copyOfMigrations()
        try "CREATE TABLE extra (id int);\n".write(toFile: "\(directory)/0099_extra.sql", atomically: true, encoding: .utf8)

        let status = try await runner(database, ["status", "--json", "--migrations-dir", directory])
        #expect(status.status == 3)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(json["pending"] as? [String] == ["0099"])
        #expect(json["latest"] as? String == "0099")
        #expect((json["drift"] as? [String])?.isEmpty == true)
    }

    @Test func driftByEditedFileAndByMissingFile() async throws {
        let database = try await TestDatabase.create()
        let edited = try copyOfMigrations()
        let path = "\(edited)/0002_bookings.sql"
        try (try String(contentsOfFile: path, encoding: .utf8) + "\n-- edited after release\n").write(toFile: path, atomically: true, encoding: .utf8)
        let status = try await runner(database, ["status", "--json", "--migrations-dir", edited])
        #expect(status.status == 4)
        #expect(status.stdout.contains(#""drift":["0002"]"#))
        #expect(try await runner(database, ["verify", "--migrations-dir", edited]).status == 4)
        // up refuses to build on a schema whose history changed.
        let up = try await runner(database, ["up", "--migrations-dir", edited])
        #expect(up.status == 4)
        #expect(up.stderr.contains("0002"))

        let missing = try copyOfMigrations()
        try FileManager.default.removeItem(atPath: "\(missing)/0003_no_double_booking.sql")
        let missingStatus = try await runner(database, ["status", "--migrations-dir", missing])
        #expect(missingStatus.status == 4)
        #expect(missingStatus.stdout.contains("missing"))
        #expect(try await runner(database, ["verify", "--migrations-dir", missing]).status == 4)
    }

    @Test func failingFileLeavesNothingAndStopsTheRun() async throws {
        let database = try await TestDatabase.create()
        let directory = try copyOfMigrations()
        let broken = try nextMigrationVersion(), after = try nextMigrationVersion(2)
        try """
            -- half of this must not survive
            CREATE TABLE half_done (id int);
            INSERT INTO half_done VALUES (1);
            INSERT INTO no_such_table VALUES (1);
            """.write(toFile: "\(directory)/\(broken)_broken.sql", atomically: true, encoding: .utf8)
        try "CREATE TABLE after_broken (id int);\n".write(toFile: "\(directory)/\(after)_after.sql", atomically: true, encoding: .utf8)

        let up = try await runner(database, ["up", "--migrations-dir", directory])
        #expect(up.status == 1)
        #expect(up.stderr.contains("\(broken)_broken.sql:4"), "\(up.stderr)")
        #expect(up.stderr.contains("no_such_table"))
        #expect(try await database.scalar("SELECT to_regclass('half_done') IS NULL", as: Bool.self) == true)
        #expect(try await database.scalar("SELECT to_regclass('after_broken') IS NULL", as: Bool.self) == true)
        #expect(try await database.scalar("SELECT count(*)::int FROM schema_migrations WHERE version >= '\(broken)'", as: Int.self) == 0)
    }

    @Test func noTransactionFileRunsOutsideATransaction() async throws {
        let database = try await TestDatabase.create()
        let directory = try copyOfMigrations()
        // CREATE INDEX CONCURRENTLY fails inside a transaction block.
        try """
            -- migrate:no-transaction
            CREATE INDEX CONCURRENTLY bookings_city_idx ON bookings (city);
            """.write(toFile: "\(directory)/\(try nextMigrationVersion())_city_index.sql", atomically: true, encoding: .utf8)
        let up = try await runner(database, ["up", "--migrations-dir", directory])
        #expect(up.status == 0, "\(up.output)")
        #expect(try await database.scalar("SELECT to_regclass('bookings_city_idx') IS NOT NULL", as: Bool.self) == true)
    }

    @Test func dryRunChangesNothing() async throws {
        let database = try await TestDatabase.create(migrated: false)
        let up = try await runner(database, ["up", "--dry-run", "--migrations-dir", TestEnvironment.migrationsDirectory])
        #expect(up.status == 0)
        #expect(up.stdout.contains("would apply 0001_users"))
        #expect(try await database.scalar("SELECT to_regclass('schema_migrations') IS NULL", as: Bool.self) == true)
        #expect(try await database.scalar("SELECT to_regclass('users') IS NULL", as: Bool.self) == true)
    }

    @Test func concurrentRunnersSerialiseAndApplyEachFileOnce() async throws {
        let database = try await TestDatabase.create(migrated: false)
        let directory = TestEnvironment.migrationsDirectory
        async let first = runner(database, ["up", "--migrations-dir", directory])
        async let second = runner(database, ["up", "--migrations-dir", directory])
        let results = try await [first, second]
        for result in results { #expect(result.status == 0, "\(result.output)") }
        let shipped = try MigrationDirectory.load(directory).files.count
        #expect(try await appliedCount(database) == shipped)
        // Between them, each file was applied exactly once.
        let appliedLines = results.map { $0.stdout.components(separatedBy: "applied ").count - 1 }.reduce(0, +)
        #expect(appliedLines == shipped)
    }

    @Test func lockTimeoutGivesUp() async throws {
        let database = try await TestDatabase.create()
        // Hold the runner's advisory lock from another session.
        try await database.withClient { client in
            try await client.withConnection { connection in
                try await drain("SELECT pg_advisory_lock(\(MigrationRunner.lockKey))", on: connection, logger: TestEnvironment.logger)
                let result = try await runProgram(
                    "migration-runner", ["up", "--lock-timeout", "1", "--migrations-dir", TestEnvironment.migrationsDirectory],
                    environment: ["DATABASE_URL": database.connectionString]
                )
                #expect(result.status == 1)
                #expect(result.stderr.contains("lock"))
                try await drain("SELECT pg_advisory_unlock(\(MigrationRunner.lockKey))", on: connection, logger: TestEnvironment.logger)
            }
        }
    }

    @Test func newCreatesTheNextNumberedFile() async throws {
        let directory = try copyOfMigrations()
        let result = try await runProgram("migration-runner", ["new", "Add city index", "--migrations-dir", directory])
        #expect(result.status == 0, "\(result.output)")
        #expect(FileManager.default.fileExists(atPath: "\(directory)/\(try nextMigrationVersion())_add_city_index.sql"))
    }

    @Test func connectionErrorsNeverPrintThePassword() async throws {
        let database = try await TestDatabase.create()
        var wrong = database.url
        wrong.password = "s3cret-Wrong-Password"
        let url = "postgres://\(wrong.username):\(wrong.password!)@\(wrong.host):\(wrong.port)/\(wrong.database)?sslmode=disable"
        let result = try await runProgram("migration-runner", ["status", "--migrations-dir", TestEnvironment.migrationsDirectory], environment: ["DATABASE_URL": url])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot reach the database"))
        #expect(!result.output.contains("s3cret-Wrong-Password"))

        let good = try await runner(database, ["status", "--migrations-dir", TestEnvironment.migrationsDirectory])
        #expect(!good.output.contains(database.url.password!))

        let missing = try await runProgram("migration-runner", ["status"], environment: [:])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("DATABASE_URL"))

        let fromFile = FileManager.default.temporaryDirectory.appendingPathComponent("dburl-\(UUID())").path
        try database.connectionString.write(toFile: fromFile, atomically: true, encoding: .utf8)
        let viaFile = try await runProgram(
            "migration-runner", ["status", "--migrations-dir", TestEnvironment.migrationsDirectory],
            environment: ["DATABASE_URL_FILE": fromFile]
        )
        #expect(viaFile.status == 0, "\(viaFile.output)")
    }
}

@Suite struct SQLStatementSplitterTests {
    @Test func splitsOnSemicolonsOutsideQuotesCommentsAndDollarBodies() {
        let sql = """
            -- leading comment
            CREATE TABLE a (x text DEFAULT 'a;b');
            /* block; comment */
            CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;

            INSERT INTO "we;ird" VALUES ('it''s; fine');
            """
        let statements = SQLStatementSplitter.split(sql)
        #expect(statements.count == 3)
        #expect(statements[0] == .init(text: "CREATE TABLE a (x text DEFAULT 'a;b')", line: 2))
        #expect(statements[1].text.hasSuffix("$$ SELECT 1; $$"))
        #expect(statements[1].line == 4)
        #expect(statements[2].line == 6)
    }
}
