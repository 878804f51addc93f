import Foundation
import HTTPTypes
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import BookingAPI

// MARK: - Answers, decoded into real fields

/// A user as `/users` shows it.
struct AcctUser: Decodable, Sendable {
    let id: Int64
    let username: String
    let role: String
    let disabled: Bool
    let created_at: Date
    let password_changed_at: Date
    let last_login_at: Date?
    let password: String?
}

struct AcctUserPage: Decodable, Sendable {
    let users: [AcctUser]
    let next_cursor: String?
}

/// The `POST /token` answer.
struct AcctTokens: Decodable, Sendable {
    let access_token: String
    let token_type: String
    let expires_in: Int
    let refresh_token: String
    let refresh_expires_in: Int
}

struct AcctFieldError: Decodable, Sendable {
    let field: String
    let message: String
}

struct AcctImportResult: Decodable, Sendable {
    let row: Int
    let username: String
    let outcome: String
    let password: String?
    let error: String?
}

struct AcctImport: Decodable, Sendable {
    let created: Int
    let updated: Int
    let failed: Int
    let results: [AcctImportResult]
}

/// An RFC 9457 problem document with the extension members these routes use.
struct AcctProblem: Decodable, Sendable {
    let type: String
    let title: String
    let status: Int
    let detail: String?
    let errors: [AcctFieldError]?
    let error: String?
    let results: [AcctImportResult]?

    var fields: [String] { (errors ?? []).map(\.field) }
}

struct AcctAuditEvent: Decodable, Sendable {
    let id: Int64
    let at: Date
    let actor: String
    let action: String
    let target_type: String
    let target_id: Int64?
    let note: String?
    let request_id: String?
}

struct AcctAuditPage: Decodable, Sendable {
    let events: [AcctAuditEvent]
    let next_cursor: String?
}

struct AcctNewPassword: Decodable, Sendable {
    let password: String
}

extension TestResponseBody {
    /// The body decoded as `T`; a body that is not one is a test failure naming what came.
    func acctDecode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: data)
        } catch {
            throw TestSetupError("cannot read \(T.self) from \(status) \(text): \(error)")
        }
    }

    /// A problem document, checked to be one.
    func acctProblem() throws -> AcctProblem {
        #expect(headers[.contentType] == "application/problem+json", "\(status) \(text)")
        let problem = try acctDecode(AcctProblem.self)
        #expect(problem.status == Int(status.code))
        return problem
    }

    var acctKeys: Set<String> { Set(json.keys) }
}

let acctRequestIDHeader = HTTPField.Name("X-Request-ID")!

func acctRequestID(_ label: String) -> String { "acct-\(label)-\(UUID().uuidString.prefix(8).lowercased())" }

/// What `/users` shows of a user: these keys and no others.
let acctUserKeys: Set<String> = ["id", "username", "role", "disabled", "created_at", "password_changed_at", "last_login_at"]

extension TestClientProtocol {
    /// Password grant (form); throws unless 200.
    func acctLogin(_ username: String, _ password: String = "correct horse battery") async throws -> AcctTokens {
        let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let response = try await send(.post, "/token", body: "grant_type=password&username=\(username)&password=\(encoded)", contentType: "application/x-www-form-urlencoded")
        guard response.status == .ok else { throw TestSetupError("login of \(username) failed: \(response.status) \(response.text)") }
        return try response.acctDecode(AcctTokens.self)
    }

    /// Refresh grant (form).
    func acctRefresh(_ refreshToken: String, extra: String = "") async throws -> TestResponseBody {
        try await send(.post, "/token", body: "grant_type=refresh_token&refresh_token=\(refreshToken)\(extra)", contentType: "application/x-www-form-urlencoded")
    }

    /// `POST /users`; throws unless 201.
    func acctCreate(_ username: String, role: String = "requester", password: String? = nil, token: String, headers: HTTPFields = [:]) async throws -> AcctUser {
        var body: [String: Any] = ["username": username, "role": role]
        if let password { body["password"] = password }
        let response = try await send(.post, "/users", token: token, json: body, headers: headers)
        guard response.status == .created else { throw TestSetupError("creating \(username) failed: \(response.status) \(response.text)") }
        return try response.acctDecode(AcctUser.self)
    }

    func acctUsers(_ query: String, token: String) async throws -> AcctUserPage {
        let response = try await send(.get, "/users\(query)", token: token)
        guard response.status == .ok else { throw TestSetupError("GET /users\(query): \(response.status) \(response.text)") }
        return try response.acctDecode(AcctUserPage.self)
    }

    func acctAudit(_ query: String, token: String) async throws -> AcctAuditPage {
        let response = try await send(.get, "/audit\(query)", token: token)
        guard response.status == .ok else { throw TestSetupError("GET /audit\(query): \(response.status) \(response.text)") }
        return try response.acctDecode(AcctAuditPage.self)
    }

    /// Every page of `path` (which carries a `limit`), following `next_cursor`, at most 50 pages.
    func acctAllUserPages(_ query: String, token: String) async throws -> [[AcctUser]] {
        var pages: [[AcctUser]] = []
        var cursor: String?
        repeat {
            let page = try await acctUsers(query + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
            pages.append(page.users)
            cursor = page.next_cursor
        } while cursor != nil && pages.count < 50
        return pages
    }
}

extension TestDatabase {
    /// Users straight into the table (a hash nobody can log in with): listing tests need many.
    func acctInsertUsers(_ users: [(String, String, Bool)]) async throws {
        for (name, role, disabled) in users {
            try await execute(PostgresQuery(unsafeSQL: """
                INSERT INTO users (username, password_hash, role, disabled)
                VALUES ('\(name)', '$argon2id$v=19$m=19456,t=2,p=1$bm90YXNhbHQ$bm90YWhhc2g', '\(role)', \(disabled))
                """))
        }
    }

    func acctInt(_ sql: String) async throws -> Int? { try await scalar(sql, as: Int.self) }
}

// MARK: - Role gating

@Suite(.timeLimit(.minutes(2))) struct AccountsRoleGatingTests {
    static func routes(_ id: Int64) -> [(HTTPRequest.Method, String, [String: Any]?)] { [
        (.get, "/users", nil),
        (.post, "/users", ["username": "intruder", "role": "admin"]),
        (.get, "/users/\(id)", nil),
        (.patch, "/users/\(id)", ["role": "admin"]),
        (.post, "/users/\(id)/password", nil),
        (.post, "/users/import", ["users": [["username": "intruder2", "role": "admin"]]]),
        (.get, "/audit", nil),
    ] }

    @Test func requestersAreForbiddenEveryAccountRouteAndChangeNothing() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let rita = try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let routes = Self.routes(rita.id)
            let token = try await client.token("rita")
            for (method, path, body) in routes {
                let response = try await client.send(method, path, token: token, json: body)
                #expect(response.status == .forbidden, "\(method) \(path): \(response.status) \(response.text)")
                if response.status == .forbidden { _ = try response.acctProblem() }
            }
            let csv = try await client.send(.post, "/users/import", token: token, body: "intruder3,admin\n", contentType: "text/csv")
            #expect(csv.status == .forbidden)
            let merge = try await client.send(.patch, "/users/\(rita.id)", token: token, json: ["role": "admin"], contentType: "application/merge-patch+json")
            #expect(merge.status == .forbidden)

            // Nothing happened: no new user, rita is still a requester, her token still works.
            #expect(try await client.send(.get, "/me", token: token).status == .ok)
            let me = try await client.send(.get, "/me", token: token)
            #expect(me.json["role"] as? String == "requester")
            for (method, path, body) in routes {
                let response = try await client.send(method, path, json: body)
                #expect(response.status == .unauthorized, "no token: \(method) \(path)")
                #expect(response.headers[.wwwAuthenticate] == "Bearer", "no token: \(method) \(path)")
            }
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username LIKE 'intruder%'") == 0)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'rita' AND role = 'requester' AND token_version = \(rita.tokenVersion)") == 1)
    }
}

// MARK: - Listing

@Suite(.timeLimit(.minutes(2))) struct AccountsListTests {
    @Test func listIsOrderedByUsernameAndFiltersByRoleDisabledAndPrefix() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.database.acctInsertUsers([
            ("delta", "requester", false), ("alpha", "requester", false), ("charlie", "admin", false),
            ("bravo", "requester", true), ("echo", "admin", true), ("bravado", "requester", false),
        ])
        try await app.test { client in
            let token = try await client.token("root")
            let all = try await client.acctUsers("", token: token)
            #expect(all.users.map(\.username) == ["alpha", "bravado", "bravo", "charlie", "delta", "echo", "root"])
            #expect(all.next_cursor == nil)
            // Trailing slash alike.
            #expect(try await client.acctUsers("/?limit=200", token: token).users.count == 7)

            #expect(try await client.acctUsers("?role=admin", token: token).users.map(\.username) == ["charlie", "echo", "root"])
            #expect(try await client.acctUsers("?role=requester", token: token).users.map(\.username) == ["alpha", "bravado", "bravo", "delta"])
            #expect(try await client.acctUsers("?disabled=true", token: token).users.map(\.username) == ["bravo", "echo"])
            #expect(try await client.acctUsers("?disabled=false", token: token).users.map(\.username) == ["alpha", "bravado", "charlie", "delta", "root"])
            #expect(try await client.acctUsers("?q=brav", token: token).users.map(\.username) == ["bravado", "bravo"])
            #expect(try await client.acctUsers("?q=brav&disabled=false", token: token).users.map(\.username) == ["bravado"])
            #expect(try await client.acctUsers("?role=admin&disabled=true", token: token).users.map(\.username) == ["echo"])
            // A prefix, not a substring.
            #expect(try await client.acctUsers("?q=ravo", token: token).users.isEmpty)

            let limited = try await client.acctUsers("?limit=2", token: token)
            #expect(limited.users.map(\.username) == ["alpha", "bravado"])
            #expect(limited.next_cursor != nil)

            let disabled = try #require(all.users.first { $0.username == "bravo" })
            #expect(disabled.disabled)
            #expect(disabled.role == "requester")
        }
    }

    @Test func wildcardsInTheQueryAreLiteral() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.database.acctInsertUsers([("ab_c", "requester", false), ("abxc", "requester", false), ("abc", "requester", false)])
        try await app.test { client in
            let token = try await client.token("root")
            #expect(try await client.acctUsers("?q=ab_", token: token).users.map(\.username) == ["ab_c"])
            #expect(try await client.acctUsers("?q=ab%5F", token: token).users.map(\.username) == ["ab_c"])
            // `%` matches nothing: no username holds one.
            #expect(try await client.acctUsers("?q=%25", token: token).users.isEmpty)
            #expect(try await client.acctUsers("?q=a%25", token: token).users.isEmpty)
            #expect(try await client.acctUsers("?q=ab%25c", token: token).users.isEmpty)
            #expect(try await client.acctUsers("?q=abc", token: token).users.map(\.username) == ["abc"])
        }
    }

    @Test func cursorPagesNeitherSkipNorRepeatWhileUsersAreAdded() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let names = ["amber", "basil", "cedar", "daisy", "elder", "fern", "ginger", "hazel", "iris", "juniper"]
        try await app.database.acctInsertUsers(names.map { ($0, "requester", false) })
        try await app.test { client in
            let token = try await client.token("root")
            // Quiet paging: every user once, in order.
            let pages = try await client.acctAllUserPages("?limit=3", token: token)
            #expect(pages.map(\.count) == [3, 3, 3, 2])
            #expect(pages.flatMap { $0 }.map(\.username) == names + ["root"])

            // Users added between pages: nothing seen twice, nothing that existed is skipped.
            var seen: [String] = []
            var cursor: String?
            var page = 0
            repeat {
                let answer = try await client.acctUsers("?limit=3&role=requester" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
                seen += answer.users.map(\.username)
                cursor = answer.next_cursor
                page += 1
                if page == 1 { try await app.database.acctInsertUsers([("aardvark", "requester", false), ("zinnia", "requester", false)]) }
            } while cursor != nil && page < 20
            #expect(Set(seen).count == seen.count, "repeated: \(seen)")
            #expect(Set(names).isSubset(of: Set(seen)))
            #expect(seen.contains("zinnia"))
            #expect(seen == seen.sorted())
        }
    }

    @Test func unknownOrInvalidQueryParametersAreBadRequests() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let token = try await client.token("root")
            for query in ["?colour=red", "?role=root", "?disabled=maybe", "?limit=0", "?limit=201", "?limit=ten", "?cursor=%21%21not-a-cursor"] {
                let response = try await client.send(.get, "/users\(query)", token: token)
                #expect(response.status == .badRequest, "\(query): \(response.status)")
                if response.status == .badRequest { _ = try response.acctProblem() }
            }
        }
    }
}

// MARK: - Creating

@Suite(.timeLimit(.minutes(2))) struct AccountsCreateTests {
    @Test func passwordsThatBreakTheRulesAreRefused() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let token = try await client.token("root")
            let cases: [(String, String, String)] = [
                ("shorty", "short pass", "too short"),
                ("Quentin.Longname", "quentin.LONGNAME", "the username, ignoring case"),
                ("common1", "qwerasdfzxcv", "common"),
                ("common2", "1QAZXSW23EDC", "common, upper case"),
                ("common3", "QwErAsDfZxCv", "common, mixed case"),
            ]
            for (username, password, why) in cases {
                let response = try await client.send(.post, "/users", token: token, json: ["username": username, "role": "requester", "password": password])
                #expect(response.status == .unprocessableContent, "\(why): \(response.status) \(response.text)")
                if response.status == .unprocessableContent {
                    #expect(try response.acctProblem().fields == ["password"], "\(why)")
                }
            }
            let tooLong = try await client.send(.post, "/users", token: token, json: ["username": "longpass", "role": "requester", "password": String(repeating: "x7", count: 513)])
            #expect(tooLong.status == .unprocessableContent)
            // Exactly 12 characters is enough.
            let twelve = try await client.send(.post, "/users", token: token, json: ["username": "twelve", "role": "requester", "password": "k9#Vt2!mQz4w"])
            #expect(twelve.status == .created, "\(twelve.text)")
            #expect(twelve.json["password"] == nil, "a chosen password is never echoed")
            _ = try await client.acctLogin("twelve", "k9#Vt2!mQz4w")
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users") == 2)
    }

    @Test func withoutAPasswordOneIsGeneratedAndShownOnce() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let token = try await client.token("root")
            let response = try await client.send(.post, "/users", token: token, json: ["username": "newbie", "role": "requester"])
            #expect(response.status == .created)
            #expect(response.headers[.cacheControl] == "no-store")
            let user = try response.acctDecode(AcctUser.self)
            #expect(response.headers[.location] == "/users/\(user.id)")
            #expect(response.acctKeys == acctUserKeys.union(["password"]))
            #expect(!response.text.contains("$argon2"))
            #expect(user.username == "newbie")
            #expect(user.role == "requester")
            #expect(!user.disabled)
            #expect(user.last_login_at == nil)
            let password = try #require(user.password)
            #expect(password.count == 24)
            #expect(PasswordPolicy.check(password, username: "newbie") == nil)

            // The generated password logs in, and it is not shown again.
            let tokens = try await client.acctLogin("newbie", password)
            #expect(try await client.send(.get, "/me", token: tokens.access_token).json["username"] as? String == "newbie")
            let fetched = try await client.send(.get, "/users/\(user.id)", token: token)
            #expect(fetched.status == .ok)
            #expect(fetched.acctKeys == acctUserKeys)
            let again = try fetched.acctDecode(AcctUser.self)
            #expect(again.password == nil)
            #expect(again.id == user.id && again.username == "newbie" && again.role == "requester")
            #expect(again.last_login_at != nil, "a login sets last_login_at")
            #expect(try await client.send(.get, "/users/\(user.id)/", token: token).status == .ok)

            let listed = try await client.send(.get, "/users", token: token)
            for entry in try #require(listed.json["users"] as? [[String: Any]]) {
                #expect(Set(entry.keys) == acctUserKeys)
            }
            #expect(!listed.text.contains("$argon2"))

            // Two generated passwords differ.
            let other = try await client.acctCreate("newbie2", role: "admin", token: token)
            #expect(other.role == "admin")
            #expect(other.password != nil && other.password != password)
        }
    }

    @Test func existingUsernameUnknownFieldAndBadValuesAreRefused() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let token = try await client.token("root")
            _ = try await client.acctCreate("taken", token: token)
            let duplicate = try await client.send(.post, "/users", token: token, json: ["username": "taken", "role": "admin"])
            #expect(duplicate.status == .conflict)
            if duplicate.status == .conflict { _ = try duplicate.acctProblem() }

            let unknown = try await client.send(.post, "/users", token: token, json: ["username": "fresh", "role": "requester", "colour": "red"])
            #expect(unknown.status == .unprocessableContent)
            if unknown.status == .unprocessableContent { #expect(try unknown.acctProblem().fields == ["colour"]) }

            let badRole = try await client.send(.post, "/users", token: token, json: ["username": "fresh", "role": "root"])
            #expect(badRole.status == .unprocessableContent)
            let badName = try await client.send(.post, "/users", token: token, json: ["username": "-fresh", "role": "requester"])
            #expect(badName.status == .unprocessableContent)
            if badName.status == .unprocessableContent { #expect(try badName.acctProblem().fields == ["username"]) }
            let noRole = try await client.send(.post, "/users", token: token, json: ["username": "fresh"])
            #expect(noRole.status == .unprocessableContent)
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'taken' AND role = 'requester'") == 1)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username LIKE '%fresh'") == 0)
    }
}

// MARK: - Reading and changing one

@Suite(.timeLimit(.minutes(2))) struct AccountsUpdateTests {
    @Test func unknownUsersAre404() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let token = try await client.token("root")
            #expect(try await client.send(.get, "/users/999999", token: token).status == .notFound)
            #expect(try await client.send(.patch, "/users/999999", token: token, json: ["disabled": true]).status == .notFound)
            #expect(try await client.send(.post, "/users/999999/password", token: token).status == .notFound)
            #expect(try await client.send(.get, "/users/abc", token: token).status == .notFound)
        }
    }

    @Test func roleAndDisabledChangesEndTokensAndSessions() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let rita = try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")

            // Promotion, as a merge patch.
            var before = try await client.acctLogin("rita")
            let promoted = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["role": "admin"], contentType: "application/merge-patch+json")
            #expect(promoted.status == .ok, "\(promoted.text)")
            #expect(promoted.acctKeys == acctUserKeys)
            #expect(try promoted.acctDecode(AcctUser.self).role == "admin")
            #expect(try await client.send(.get, "/me", token: before.access_token).status == .unauthorized)
            var refused = try await client.acctRefresh(before.refresh_token)
            #expect(refused.status == .unauthorized)
            #expect(try refused.acctProblem().error == "invalid_grant")

            // Disabling, as plain JSON.
            before = try await client.acctLogin("rita")
            let disabled = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["disabled": true])
            #expect(disabled.status == .ok, "\(disabled.text)")
            #expect(try disabled.acctDecode(AcctUser.self).disabled)
            #expect(try await client.send(.get, "/me", token: before.access_token).status == .unauthorized)
            refused = try await client.acctRefresh(before.refresh_token)
            #expect(refused.status == .unauthorized)
            #expect(try refused.acctProblem().error == "invalid_grant")
            #expect(try await client.send(.post, "/token", json: ["username": "rita", "password": "correct horse battery"]).status == .forbidden)

            // Demotion while enabling: both at once.
            let back = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["disabled": false, "role": "requester"], contentType: "application/merge-patch+json")
            #expect(back.status == .ok)
            let user = try back.acctDecode(AcctUser.self)
            #expect(user.role == "requester" && !user.disabled)
            #expect(try await client.send(.get, "/me", token: before.access_token).status == .unauthorized, "enabling revives no token")

            // A patch that changes nothing revokes nothing.
            let current = try await client.acctLogin("rita")
            let version = try await app.database.acctInt("SELECT token_version FROM users WHERE id = \(rita.id)")
            let noOps: [([String: Any], String)] = [
                (["role": "requester", "disabled": false], "application/merge-patch+json"), ([:], "application/json"), (["role": NSNull()], "application/merge-patch+json"),
            ]
            for (body, type) in noOps {
                let same = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: body, contentType: type)
                #expect(same.status == .ok, "\(body): \(same.text)")
            }
            #expect(try await app.database.acctInt("SELECT token_version FROM users WHERE id = \(rita.id)") == version)
            #expect(try await client.send(.get, "/me", token: current.access_token).status == .ok)
            #expect(try await client.acctRefresh(current.refresh_token).status == .ok)
        }
        // Three real changes, three records; the no-op patches left none.
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM audit_events WHERE action = 'user.updated' AND target_id = \(rita.id)") == 3)
    }

    @Test func patchBodiesAreChecked() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let rita = try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")
            let unknown = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["username": "renamed"])
            #expect(unknown.status == .unprocessableContent)
            if unknown.status == .unprocessableContent { #expect(try unknown.acctProblem().fields == ["username"]) }
            let badRole = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["role": "superuser"], contentType: "application/merge-patch+json")
            #expect(badRole.status == .unprocessableContent)
            let badFlag = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["disabled": "yes"])
            #expect(badFlag.status == .unprocessableContent)
            let plain = try await client.send(.patch, "/users/\(rita.id)", token: admin, body: "role=admin", contentType: "application/x-www-form-urlencoded")
            #expect(plain.status == .badRequest)
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE id = \(rita.id) AND role = 'requester' AND NOT disabled") == 1)
    }

    @Test func theLastEnabledAdminCannotBeDemotedOrDisabled() async throws {
        let app = try await TestApp.make()
        let root = try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            let refusals: [([String: Any], String)] = [
                (["role": "requester"], "application/merge-patch+json"), (["disabled": true], "application/json"), (["role": "requester", "disabled": true], "application/json"),
            ]
            for (body, type) in refusals {
                let response = try await client.send(.patch, "/users/\(root.id)", token: admin, json: body, contentType: type)
                #expect(response.status == .conflict, "\(body): \(response.status)")
                if response.status == .conflict { _ = try response.acctProblem() }
            }
            #expect(try await client.send(.get, "/me", token: admin).status == .ok, "a refused change revokes nothing")

            // A disabled admin does not count: still the last enabled one.
            let dormant = try await client.acctCreate("dormant", role: "admin", token: admin)
            #expect(try await client.send(.patch, "/users/\(dormant.id)", token: admin, json: ["disabled": true]).status == .ok)
            #expect(try await client.send(.patch, "/users/\(root.id)", token: admin, json: ["role": "requester"]).status == .conflict)

            // With a second enabled admin, the first may step down.
            #expect(try await client.send(.patch, "/users/\(dormant.id)", token: admin, json: ["disabled": false]).status == .ok)
            #expect(try await client.send(.patch, "/users/\(root.id)", token: admin, json: ["role": "requester"]).status == .ok)
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE role = 'admin' AND NOT disabled") == 1)
    }

    static func demotion(_ disable: Bool) -> [String: Any] { disable ? ["disabled": true] : ["role": "requester"] }

    /// The only two admins demote (or disable) each other at the same moment: both requests are
    /// held until both have passed authentication and wait on the admins' rows, then race.
    @Test(arguments: [false, true]) func concurrentDemotionsOfTheOnlyTwoAdminsLeaveOne(disable: Bool) async throws {
        let app = try await TestApp.make()
        let ada = try await app.createUser("ada", role: .admin)
        let bea = try await app.createUser("bea", role: .admin)
        try await app.test { client in
            let adaToken = try await client.token("ada")
            let beaToken = try await client.token("bea")
            let answers: [TestResponseBody] = try await app.database.withClient { postgres in
                try await postgres.withConnection { connection in
                    let logger = TestEnvironment.logger
                    try await drain("BEGIN", on: connection, logger: logger)
                    try await drain("SELECT id FROM users WHERE role = 'admin' FOR UPDATE", on: connection, logger: logger)
                    async let first = client.send(.patch, "/users/\(bea.id)", token: adaToken, json: Self.demotion(disable), contentType: "application/merge-patch+json")
                    async let second = client.send(.patch, "/users/\(ada.id)", token: beaToken, json: Self.demotion(disable))
                    for _ in 0..<100 {
                        var waiting = 0
                        let rows = try await connection.query(
                            "SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                            logger: logger
                        )
                        for try await count in rows.decode(Int.self) { waiting = count }
                        if waiting >= 2 { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    try await drain("COMMIT", on: connection, logger: logger)
                    return [try await first, try await second]
                }
            }
            let statuses = answers.map(\.status.code).sorted()
            #expect(statuses == [200, 409], "\(answers.map { "\($0.status) \($0.text)" })")
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE role = 'admin' AND NOT disabled") == 1)
    }
}

// MARK: - Password reset

@Suite(.timeLimit(.minutes(2))) struct AccountsPasswordResetTests {
    @Test func resetReturnsANewPasswordOnceAndEndsSessions() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let rita = try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")
            let first = try await client.acctLogin("rita")
            let second = try await client.acctLogin("rita")

            let response = try await client.send(.post, "/users/\(rita.id)/password", token: admin)
            #expect(response.status == .ok, "\(response.text)")
            #expect(response.headers[.cacheControl] == "no-store")
            #expect(response.acctKeys == ["password"])
            let password = try response.acctDecode(AcctNewPassword.self).password
            #expect(PasswordPolicy.check(password, username: "rita") == nil)
            #expect(password != "correct horse battery")

            let old = try await client.send(.post, "/token", json: ["username": "rita", "password": "correct horse battery"])
            #expect(old.status == .unauthorized)
            for session in [first, second] {
                #expect(try await client.send(.get, "/me", token: session.access_token).status == .unauthorized)
                let refused = try await client.acctRefresh(session.refresh_token)
                #expect(refused.status == .unauthorized)
                #expect(try refused.acctProblem().error == "invalid_grant")
            }
            let fresh = try await client.acctLogin("rita", password)
            #expect(try await client.send(.get, "/me", token: fresh.access_token).status == .ok)

            // A second reset gives another password; the first one stops working.
            let again = try await client.send(.post, "/users/\(rita.id)/password", token: admin)
            let newer = try again.acctDecode(AcctNewPassword.self).password
            #expect(newer != password)
            #expect(try await client.send(.post, "/token", json: ["username": "rita", "password": password]).status == .unauthorized)
            _ = try await client.acctLogin("rita", newer)
        }
    }
}

// MARK: - Import

@Suite(.timeLimit(.minutes(3))) struct AccountsImportTests {
    @Test func atomicImportWithABadRowChangesNothing() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.createUser("bob", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")
            let rows: [[String: Any]] = [
                ["username": "new.one", "role": "requester"],
                ["username": "bob", "role": "admin"],
                ["username": "-bad", "role": "requester"],
                ["username": "new.two", "role": "superuser"],
                ["username": "new.three", "role": "admin"],
            ]
            for body in [["users": rows] as [String: Any], ["users": rows, "atomic": true]] {
                let response = try await client.send(.post, "/users/import", token: admin, json: body)
                #expect(response.status == .unprocessableContent, "\(response.text)")
                guard response.status == .unprocessableContent else { continue }
                let problem = try response.acctProblem()
                #expect(problem.fields.sorted() == ["users.3", "users.4"])
                let results = try #require(problem.results)
                #expect(results.map(\.row) == [1, 2, 3, 4, 5])
                #expect(results.map(\.username) == ["new.one", "bob", "-bad", "new.two", "new.three"])
                #expect(results.allSatisfy { $0.password == nil })
                #expect(results.filter { $0.outcome == "failed" }.map(\.row) == [3, 4])
                #expect(results[2].error != nil && results[3].error != nil)
                #expect(!response.text.contains("\"password\""))
            }

            // CSV, atomic by default.
            let csv = try await client.send(.post, "/users/import", token: admin, body: "csv.one,requester\ncsv.two,wizard\n", contentType: "text/csv")
            #expect(csv.status == .unprocessableContent)
            if csv.status == .unprocessableContent {
                let problem = try csv.acctProblem()
                #expect(problem.fields == ["users.2"])
                #expect(problem.results?.allSatisfy { $0.password == nil } == true)
            }
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users") == 2)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'bob' AND role = 'requester'") == 1)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM audit_events WHERE note LIKE '%import%' OR action = 'user.updated'") == 0)
    }

    @Test func nonAtomicImportReportsEveryRow() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let bob = try await app.createUser("bob", role: .requester)
        try await app.createUser("cara", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")
            let bobSession = try await client.acctLogin("bob")
            let caraSession = try await client.acctLogin("cara")
            let body: [String: Any] = ["atomic": false, "users": [
                ["username": "imp.one", "role": "requester"],
                ["username": "bob", "role": "admin"],
                ["username": "cara", "role": "requester"],
                ["username": "bad name", "role": "requester"],
                ["username": "imp.two", "role": "admin"],
            ]]
            let response = try await client.send(.post, "/users/import", token: admin, json: body)
            #expect(response.status == .ok, "\(response.text)")
            #expect(response.headers[.cacheControl] == "no-store")
            let answer = try response.acctDecode(AcctImport.self)
            #expect(answer.created == 2 && answer.updated == 1 && answer.failed == 1)
            #expect(answer.results.map(\.row) == [1, 2, 3, 4, 5])
            #expect(answer.results.map(\.outcome) == ["created", "updated", "unchanged", "failed", "created"])
            #expect(answer.results[3].error != nil)
            for result in answer.results {
                #expect((result.password != nil) == (result.outcome == "created"), "row \(result.row)")
            }
            for result in answer.results where result.outcome == "created" {
                let password = try #require(result.password)
                #expect(password.count == 24)
                _ = try await client.acctLogin(result.username, password)
            }
            // bob's role changed (his sessions end); cara's did not (hers live on).
            #expect(try await client.send(.get, "/me", token: bobSession.access_token).status == .unauthorized)
            #expect(try await client.acctRefresh(bobSession.refresh_token).status == .unauthorized)
            #expect(try await client.send(.get, "/me", token: caraSession.access_token).status == .ok)
            let imported = try await client.acctUsers("?q=imp.", token: admin)
            #expect(imported.users.map(\.username) == ["imp.one", "imp.two"])
            #expect(imported.users.map(\.role) == ["requester", "admin"])
            #expect(try await client.send(.get, "/users/\(bob.id)", token: admin).acctDecode(AcctUser.self).role == "admin")

            // The same import again: nothing to create, nothing to change.
            let again = try await client.send(.post, "/users/import", token: admin, json: body)
            let second = try again.acctDecode(AcctImport.self)
            #expect(second.created == 0 && second.updated == 0 && second.failed == 1)
            #expect(second.results.map(\.outcome) == ["unchanged", "unchanged", "unchanged", "failed", "unchanged"])
            #expect(second.results.allSatisfy { $0.password == nil })
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users") == 5)
    }

    @Test func csvWithAndWithoutAHeaderLine() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            let headed = try await client.send(.post, "/users/import?atomic=false", token: admin, body: "username,role\ncsv.one,requester\ncsv.two,admin\ncsv.three\n", contentType: "text/csv")
            #expect(headed.status == .ok, "\(headed.text)")
            let answer = try headed.acctDecode(AcctImport.self)
            #expect(answer.created == 2 && answer.updated == 0 && answer.failed == 1)
            #expect(answer.results.map(\.row) == [1, 2, 3], "the header line is not a row")
            #expect(answer.results.map(\.username) == ["csv.one", "csv.two", "csv.three"])
            #expect(answer.results.map(\.outcome) == ["created", "created", "failed"])

            let bare = try await client.send(.post, "/users/import", token: admin, body: "csv.four,requester\r\ncsv.one,admin\r\n", contentType: "text/csv; charset=utf-8")
            #expect(bare.status == .ok, "\(bare.text)")
            let second = try bare.acctDecode(AcctImport.self)
            #expect(second.created == 1 && second.updated == 1 && second.failed == 0)
            #expect(second.results.map(\.outcome) == ["created", "updated"])
            let password = try #require(second.results[0].password)
            _ = try await client.acctLogin("csv.four", password)

            let atomicFalse = try await client.send(.post, "/users/import?atomic=true", token: admin, body: "username,role\ncsv.five,requester\n", contentType: "text/csv")
            #expect(atomicFalse.status == .ok)
            #expect(try atomicFalse.acctDecode(AcctImport.self).results.map(\.row) == [1])
        }
        let roles = try await app.database.scalar("SELECT string_agg(username || ':' || role, ',' ORDER BY username) FROM users WHERE username LIKE 'csv.%'", as: String.self)
        #expect(roles == "csv.five:requester,csv.four:requester,csv.one:admin,csv.two:admin")
    }

    /// A row without a username, or with a role that is not a string, is a failed row like any
    /// other: atomic, a 422 naming `users.N` with the results; otherwise a result of its own.
    @Test func rowsMissingAFieldAreFailedRows() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            let rows: [[String: Any]] = [["username": "shape.one", "role": "requester"], ["role": "requester"], ["username": "shape.three", "role": 7]]
            let atomic = try await client.send(.post, "/users/import", token: admin, json: ["users": rows])
            #expect(atomic.status == .unprocessableContent)
            if atomic.status == .unprocessableContent {
                let problem = try atomic.acctProblem()
                #expect(problem.fields.contains { $0 == "users.2" || $0.hasPrefix("users.2.") }, "\(problem.fields)")
                #expect(problem.fields.contains { $0 == "users.3" || $0.hasPrefix("users.3.") }, "\(problem.fields)")
                #expect(problem.results?.map(\.row) == [1, 2, 3], "an atomic refusal carries the results: \(atomic.text)")
            }
            let partial = try await client.send(.post, "/users/import", token: admin, json: ["users": rows, "atomic": false])
            #expect(partial.status == .ok, "row by row, a result per row: \(partial.text)")
            if partial.status == .ok {
                let answer = try partial.acctDecode(AcctImport.self)
                #expect(answer.results.map(\.outcome) == ["created", "failed", "failed"])
                #expect(answer.created == 1 && answer.failed == 2)
            }
        }
    }

    @Test func moreThanAThousandRowsAreRefused() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            let rows = (1...1001).map { ["username": "bulk\($0)", "role": "requester"] }
            let json = try await client.send(.post, "/users/import", token: admin, json: ["users": rows, "atomic": false])
            #expect(json.status == .unprocessableContent)
            if json.status == .unprocessableContent { #expect(try json.acctProblem().fields == ["users"]) }
            let csv = try await client.send(.post, "/users/import?atomic=false", token: admin, body: (1...1001).map { "bulk\($0),requester\n" }.joined(), contentType: "text/csv")
            #expect(csv.status == .unprocessableContent)
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users") == 1)
    }

    @Test func demotingTheLastAdminThroughImportFailsThatRow() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            let rows: [[String: Any]] = [["username": "helper", "role": "requester"], ["username": "root", "role": "requester"]]
            let partial = try await client.send(.post, "/users/import", token: admin, json: ["users": rows, "atomic": false])
            #expect(partial.status == .ok, "\(partial.text)")
            let answer = try partial.acctDecode(AcctImport.self)
            #expect(answer.created == 1 && answer.updated == 0 && answer.failed == 1)
            #expect(answer.results.map(\.outcome) == ["created", "failed"])
            #expect(answer.results[1].error != nil)

            let atomic = try await client.send(.post, "/users/import", token: admin, json: ["users": [["username": "helper2", "role": "requester"], ["username": "root", "role": "requester"]]])
            #expect(atomic.status == .unprocessableContent)
            if atomic.status == .unprocessableContent {
                let problem = try atomic.acctProblem()
                #expect(problem.fields == ["users.2"])
                #expect(problem.results?.allSatisfy { $0.password == nil } == true)
            }
            #expect(try await client.send(.get, "/me", token: admin).status == .ok, "root's tokens live on")
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'root' AND role = 'admin' AND NOT disabled") == 1)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'helper'") == 1)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users WHERE username = 'helper2'") == 0)
    }
}

// MARK: - Audit

@Suite(.timeLimit(.minutes(3))) struct AccountsAuditTests {
    @Test func everyAccountAndBookingActionIsRecordedWithItsRequestID() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let ids = ["create", "update", "reset", "change", "logout", "submit", "accept"].reduce(into: [String: String]()) { $0[$1] = acctRequestID($1) }
        @Sendable func header(_ key: String) -> HTTPFields { [acctRequestIDHeader: ids[key]!] }
        try await app.test { client in
            let admin = try await client.token("root")
            let rex = try await client.acctCreate("rex", token: admin, headers: header("create"))
            let patched = try await client.send(.patch, "/users/\(rex.id)", token: admin, json: ["disabled": true], headers: header("update"))
            #expect(patched.headers[acctRequestIDHeader] == ids["update"])
            _ = try await client.send(.patch, "/users/\(rex.id)", token: admin, json: ["disabled": false])

            // The time between the first actions and the rest, for `from` and `to`.
            try await Task.sleep(for: .milliseconds(30))
            let mark = try #require(try await app.database.scalar(
                #"SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#, as: String.self))
            try await Task.sleep(for: .milliseconds(30))

            let reset = try await client.send(.post, "/users/\(rex.id)/password", token: admin, headers: header("reset"))
            let password = try reset.acctDecode(AcctNewPassword.self).password
            let rexToken = try await client.acctLogin("rex", password).access_token
            let changed = try await client.send(.post, "/me/password", token: rexToken, json: ["current_password": password, "new_password": "rex has a new passphrase"], headers: header("change"))
            #expect(changed.status == .ok, "\(changed.text)")
            let rexAccess = try changed.acctDecode(AcctTokens.self).access_token
            #expect(try await client.send(.post, "/logout", token: rexAccess, headers: header("logout")).status == .noContent)
            let rexAgain = try await client.acctLogin("rex", "rex has a new passphrase").access_token
            let submitted = try await client.submit(token: rexAgain, headers: header("submit"))
            #expect(submitted.status == .created)
            let bookingID = try #require(submitted.json["id"] as? Int)
            let accepted = try await client.send(.post, "/booking/accept", token: admin, json: ["id": bookingID], headers: header("accept"))
            #expect(accepted.status == .ok)

            let all = try await client.acctAudit("?limit=200", token: admin)
            #expect(all.next_cursor == nil)
            func event(_ key: String) -> AcctAuditEvent? { all.events.first { $0.request_id == ids[key] } }
            let expected: [(String, String, String, String, Int64)] = [
                ("create", "user.created", "root", "user", rex.id),
                ("update", "user.updated", "root", "user", rex.id),
                ("reset", "user.password_reset", "root", "user", rex.id),
                ("change", "user.password_changed", "rex", "user", rex.id),
                ("logout", "user.logged_out", "rex", "user", rex.id),
                ("submit", "booking.submitted", "rex", "booking", Int64(bookingID)),
                ("accept", "booking.accepted", "root", "booking", Int64(bookingID)),
            ]
            var positions: [Int] = []
            for (key, action, actor, type, target) in expected {
                let found = event(key)
                #expect(found?.action == action, "\(key): \(String(describing: found))")
                #expect(found?.actor == actor, "\(key)")
                #expect(found?.target_type == type, "\(key)")
                #expect(found?.target_id == target, "\(key)")
                #expect(all.events.filter { $0.request_id == ids[key] }.count == 1, "\(key): one event per request")
                if let index = all.events.firstIndex(where: { $0.request_id == ids[key] }) { positions.append(index) }
            }
            // Newest first.
            #expect(positions == positions.sorted(by: >), "\(positions)")
            #expect(zip(all.events, all.events.dropFirst()).allSatisfy { $0.at >= $1.at && ($0.at > $1.at || $0.id > $1.id) })
            let raw = try await client.send(.get, "/audit?limit=1", token: admin)
            let first = try #require((raw.json["events"] as? [[String: Any]])?.first)
            #expect(Set(first.keys) == ["id", "at", "actor", "action", "target_type", "target_id", "note", "request_id"])

            // Filters.
            let byRex = try await client.acctAudit("?actor=rex", token: admin).events
            #expect(!byRex.isEmpty && byRex.allSatisfy { $0.actor == "rex" })
            #expect(Set(byRex.map(\.action)) == ["user.password_changed", "user.logged_out", "booking.submitted"])
            let updates = try await client.acctAudit("?action=user.updated", token: admin).events
            #expect(updates.count == 2 && updates.allSatisfy { $0.action == "user.updated" && $0.target_id == rex.id })
            let bookings = try await client.acctAudit("?target_type=booking", token: admin).events
            #expect(bookings.map(\.action) == ["booking.accepted", "booking.submitted"])
            let combined = try await client.acctAudit("?actor=root&target_type=user&action=user.password_reset", token: admin).events
            #expect(combined.map(\.request_id) == [ids["reset"]])
            let later = try await client.acctAudit("?from=\(mark)", token: admin).events.compactMap(\.request_id)
            let earlier = try await client.acctAudit("?to=\(mark)", token: admin).events.compactMap(\.request_id)
            for key in ["reset", "change", "logout", "submit", "accept"] {
                #expect(later.contains(ids[key]!) && !earlier.contains(ids[key]!), "\(key) after the mark")
            }
            for key in ["create", "update"] {
                #expect(earlier.contains(ids[key]!) && !later.contains(ids[key]!), "\(key) before the mark")
            }
            #expect(try await client.acctAudit("?from=\(mark)&to=\(mark)", token: admin).events.isEmpty)

            // Keyset pages: every event once, in the same order.
            var paged: [Int64] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await client.acctAudit("?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: admin)
                #expect(page.events.count <= 2)
                paged += page.events.map(\.id)
                cursor = page.next_cursor
                pages += 1
            } while cursor != nil && pages < 100
            #expect(paged == all.events.map(\.id))
            var filteredPaged: [Int64] = []
            cursor = nil
            pages = 0
            repeat {
                let page = try await client.acctAudit("?limit=1&target_type=user" + (cursor.map { "&cursor=\($0)" } ?? ""), token: admin)
                filteredPaged += page.events.map(\.id)
                cursor = page.next_cursor
                pages += 1
            } while cursor != nil && pages < 100
            #expect(filteredPaged == all.events.filter { $0.target_type == "user" }.map(\.id))

            for query in ["?colour=red", "?target_type=planet", "?limit=0", "?from=yesterday", "?cursor=bm9wZQ"] {
                #expect(try await client.send(.get, "/audit\(query)", token: admin).status == .badRequest, "\(query)")
            }
        }
    }

    /// `action` takes one of the listed event types; anything else is an unknown query
    /// parameter value (400), as `target_type` already is.
    @Test func anUnknownActionIsABadRequest() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        try await app.test { client in
            let admin = try await client.token("root")
            #expect(try await client.send(.get, "/audit?action=user.created", token: admin).status == .ok)
            for value in ["user.exploded", "nonsense", "USER.CREATED"] {
                let response = try await client.send(.get, "/audit?action=\(value)", token: admin)
                #expect(response.status == .badRequest, "action=\(value): \(response.status) \(response.text)")
            }
        }
    }

    @Test func aGeneratedRequestIDIsTheOneRecorded() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let rita = try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let admin = try await client.token("root")
            let response = try await client.send(.patch, "/users/\(rita.id)", token: admin, json: ["role": "admin"])
            #expect(response.status == .ok)
            let generated = try #require(response.headers[acctRequestIDHeader])
            let events = try await client.acctAudit("?action=user.updated", token: admin).events
            #expect(events.map(\.request_id) == [generated])
            #expect(events.first?.actor == "root" && events.first?.target_id == rita.id)
        }
    }

    @Test func managePasswordsChangesAppearInTheAudit() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let env = ["DATABASE_URL": app.database.connectionString]
        let created = try await runProgram("manage-passwords", ["set", "cli.user", "--role", "requester", "--password-stdin"], environment: env, input: "a sturdy passphrase 9\n")
        #expect(created.status == 0, "\(created.output)")
        let reset = try await runProgram("manage-passwords", ["set", "cli.user", "--password-stdin"], environment: env, input: "another sturdy passphrase\n")
        #expect(reset.status == 0, "\(reset.output)")
        let disabled = try await runProgram("manage-passwords", ["disable", "cli.user"], environment: env)
        #expect(disabled.status == 0, "\(disabled.output)")
        try await app.test { client in
            let admin = try await client.token("root")
            let user = try #require(try await client.acctUsers("?q=cli.user", token: admin).users.first)
            let events = try await client.acctAudit("?actor=manage-passwords", token: admin).events.filter { $0.target_id == user.id }
            #expect(events.map(\.action) == ["user.updated", "user.password_reset", "user.created"])
            #expect(events.allSatisfy { $0.actor == "manage-passwords" && $0.target_type == "user" && $0.request_id == nil })
        }
    }

    @Test func theAuditTableIsAppendOnly() async throws {
        let app = try await TestApp.make()
        try await app.createUser("root", role: .admin)
        let before = try await app.database.acctInt("SELECT count(*)::int FROM audit_events")
        #expect((before ?? 0) >= 1)
        await #expect(throws: (any Error).self) { try await app.database.execute("UPDATE audit_events SET note = 'x'") }
        await #expect(throws: (any Error).self) { try await app.database.execute("DELETE FROM audit_events") }
        await #expect(throws: (any Error).self) { try await app.database.execute("TRUNCATE audit_events") }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM audit_events") == before)
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM audit_events WHERE note = 'x'") == 0)
    }
}

// MARK: - manage-passwords and the password rules

@Suite(.timeLimit(.minutes(2))) struct AccountsManagePasswordsRulesTests {
    @Test func setRefusesCommonPasswordsAndTheUsername() async throws {
        let app = try await TestApp.make()
        try await app.createUser("zed.existing", role: .requester)
        let env = ["DATABASE_URL": app.database.connectionString]
        let cases: [(String, String, String)] = [
            ("fresh.user", "qwerasdfzxcv\n", "common"),
            ("fresh.user", "1QAZXSW23EDC\n", "common, upper case"),
            ("zoe.longname", "ZOE.LONGNAME\n", "the username, ignoring case"),
            ("zed.existing", "1qazxsw23edc\n", "common, for an existing user"),
            ("zed.existing", "Zed.Existing\n", "the username, for an existing user"),
        ]
        for (username, input, why) in cases {
            let result = try await runProgram("manage-passwords", ["set", username, "--role", "requester", "--password-stdin"], environment: env, input: input)
            #expect(result.status == 1, "\(why): \(result.output)")
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1, "\(why): \(result.stderr)")
            #expect(!result.output.contains(input.trimmingCharacters(in: .newlines)), "\(why): the password is never printed")
        }
        #expect(try await app.database.acctInt("SELECT count(*)::int FROM users") == 1)
        try await app.test { client in
            _ = try await client.acctLogin("zed.existing")
        }
    }
}
