import Foundation
import PostgresNIO
import Testing

@testable import BookingAPI

/// `PreparedQueries`: statements PostgreSQL parses once per connection, rows collected on the
/// event loop, errors translated like every other statement's.
@Suite struct PreparedQueriesTests {
    /// Values of every type the list binds and reads, NULL included, round trip; the rows are
    /// read as binary, which is what postgres-nio sends for (see `OrderedCells`).
    @Test func valuesRoundTripAndEachStatementIsPreparedOnce() async throws {
        let database = try await TestDatabase.create()
        let instant = Date(timeIntervalSince1970: 1_900_000_000.123456)
        let sql = "SELECT $1::bigint AS a, $2::text AS b, $3::timestamptz AS c, $4::boolean AS d, NULL::text AS e, 42::integer AS f"
        try await database.withClient { client in
            try await client.withConnection { connection in
                for round in 0..<3 {
                    let binds = [PostgresData(int64: 9_000_000_000 + Int64(round)), PostgresData(string: "zürich \u{1F600}"), PostgresData(date: instant), PostgresData(bool: true)]
                    let rows = try await PreparedQueries.shared.rows(sql, binds, on: connection)
                    try #require(rows.count == 1)
                    var cells = OrderedCells(rows[0], fromPreparedQuery: true)
                    #expect(try cells.next("a", Int64.self) == 9_000_000_000 + Int64(round))
                    #expect(try cells.next("b", String.self) == "zürich \u{1F600}")
                    #expect(abs(try cells.next("c", Date.self).timeIntervalSince(instant)) < 0.000_001)
                    #expect(try cells.next("d", Bool.self) == true)
                    #expect(try cells.next("e", String?.self) == nil)
                    #expect(try cells.next("f", Int.self) == 42)
                }
                let prepared = try await connection.collect("SELECT count(*) FROM pg_prepared_statements WHERE statement = \(sql)", logger: TestEnvironment.logger)
                for try await count in prepared.decode(Int64.self) { #expect(count == 1, "prepared once on this connection, run three times") }
            }
        }
    }

    /// A server error comes back as the older API's error, which the database layer translates.
    @Test func serverErrorsAreTranslated() async throws {
        let database = try await TestDatabase.create()
        try await database.withClient { client in
            try await client.withConnection { connection in
                _ = try await connection.collect("CREATE TEMP TABLE t (k integer PRIMARY KEY)", logger: TestEnvironment.logger)
                let insert = "INSERT INTO t VALUES ($1::integer)"
                _ = try await PreparedQueries.shared.rows(insert, [PostgresData(int32: 1)], on: connection)
                do {
                    _ = try await PreparedQueries.shared.rows(insert, [PostgresData(int32: 1)], on: connection)
                    Issue.record("a duplicate key was accepted")
                } catch {
                    guard case .constraint(let state, let name)? = DatabaseError.translating(error) else {
                        Issue.record("untranslated: \(error)")
                        return
                    }
                    #expect(state == "23505" && name == "t_pkey")
                }
                do {
                    _ = try await PreparedQueries.shared.rows("SELECT 1 / $1::integer", [PostgresData(int32: 0)], on: connection)
                    Issue.record("division by zero answered")
                } catch {
                    guard case .unexpected(let state, _)? = DatabaseError.translating(error) else {
                        Issue.record("untranslated: \(error)")
                        return
                    }
                    #expect(state == "22012")
                }
            }
        }
    }
}
