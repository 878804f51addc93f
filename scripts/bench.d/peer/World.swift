import Hummingbird
import PostgresNIO

/// A row of the test's World table, answered as {"id":…,"randomNumber":…}.
struct World: ResponseEncodable {
    let id: Int32
    let randomNumber: Int32
}

/// The test allows prepared statements and the TechEmpower implementation uses one: PostgreSQL
/// parses and plans it once per connection, which is part of what the floor measures.
struct SelectWorld: PostgresPreparedStatement {
    static let sql = "SELECT id, randomnumber FROM world WHERE id = $1"

    let id: Int32

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(id)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> World {
        let (id, randomNumber) = try row.decode((Int32, Int32).self)
        return World(id: id, randomNumber: randomNumber)
    }
}
