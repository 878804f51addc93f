import Foundation
import HTTPTypes
import Hummingbird

/// `/users` and `/audit`: account administration, for admins only.
struct UserController {
    let accounts: AccountService
    let audit: AuditStore

    struct UserPage: ResponseEncodable {
        let users: [UserView]
        let next_cursor: String?

        enum CodingKeys: String, CodingKey { case users, next_cursor }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(users, forKey: .users)
            try container.encode(next_cursor, forKey: .next_cursor)
        }
    }

    /// The user, plus the generated password when there is one (shown this once).
    struct Created: ResponseEncodable {
        let user: UserView
        let password: String?

        enum CodingKeys: String, CodingKey { case password }

        func encode(to encoder: any Encoder) throws {
            try user.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(password, forKey: .password)
        }
    }

    struct NewPassword: ResponseEncodable {
        let password: String
    }

    struct ImportAnswer: ResponseEncodable {
        let created: Int
        let updated: Int
        let failed: Int
        let results: [AccountService.ImportResult]
    }

    struct AuditPage: ResponseEncodable {
        let events: [AuditEvent]
        let next_cursor: String?

        enum CodingKeys: String, CodingKey { case events, next_cursor }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(events, forKey: .events)
            try container.encode(next_cursor, forKey: .next_cursor)
        }
    }

    func register(adminRoutes: RouterGroup<AuthorizedContext<AdminOnly>>) {
        adminRoutes.get("users") { request, context in try await self.list(request, context: context) }
        adminRoutes.post("users") { request, context in try await self.create(request, context: context) }
        adminRoutes.post("users/import") { request, context in try await self.importUsers(request, context: context) }
        adminRoutes.get("users/:id") { _, context in try await self.get(context: context) }
        adminRoutes.patch("users/:id") { request, context in try await self.update(request, context: context) }
        adminRoutes.post("users/:id/password") { request, context in try await self.resetPassword(request, context: context) }
        adminRoutes.get("audit") { request, context in try await self.auditEvents(request, context: context) }
    }

    static func actor(_ context: AuthorizedContext<AdminOnly>) -> AuditActor {
        AuditActor(name: context.user.username, userID: context.user.id, requestID: context.requestID)
    }

    static func noStore(_ response: Response) -> Response {
        var response = response
        response.headers[.cacheControl] = "no-store"
        return response
    }

    func list(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> UserPage {
        var filter = UserListFilter()
        for (key, value) in request.uri.queryParameters {
            let text = String(value)
            switch key {
            case "role":
                guard let role = Role(rawValue: text) else { throw ProblemError.badRequest("role must be admin or requester") }
                filter.role = role
            case "disabled":
                guard text == "true" || text == "false" else { throw ProblemError.badRequest("disabled must be true or false") }
                filter.disabled = text == "true"
            case "q":
                guard (1...64).contains(text.count) else { throw ProblemError.badRequest("q must be 1–64 characters") }
                filter.prefix = text
            case "limit":
                guard let limit = Int(text), (1...200).contains(limit) else { throw ProblemError.badRequest("limit must be from 1 to 200") }
                filter.limit = limit
            case "cursor":
                guard let data = Data(base64URL: text), let name = String(data: data, encoding: .utf8), UsernamePolicy.check(name) == nil else {
                    throw ProblemError.badRequest("cursor is not one this server gave out")
                }
                filter.after = name
            default:
                throw ProblemError.badRequest("unknown query parameter '\(key)'")
            }
        }
        let (users, next) = try await accounts.list(filter, logger: context.logger)
        return UserPage(users: users, next_cursor: next.map { Data($0.utf8).base64URLEncoded() })
    }

    func create(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> Response {
        let body = try await request.jsonObject(context: context)
        var reader = FieldReader(body, allowed: ["username", "role", "password"])
        let username = reader.string("username", lengths: 1...64)
        let roleText = reader.string("role", lengths: 1...16)
        let role = roleText.flatMap(Role.init(rawValue:))
        if roleText != nil, role == nil { reader.fail("role", "must be admin or requester") }
        var password: String?
        if let value = body["password"], value != .null {
            if case .string(let text) = value { password = text } else { reader.fail("password", "must be a string") }
        }
        guard reader.errors.isEmpty, let username, let role else { throw ProblemError.invalid(reader.errors) }
        do {
            let (user, generated) = try await accounts.create(username: username, role: role, password: password, actor: Self.actor(context), logger: context.logger)
            var response = try context.responseEncoder.encode(
                Created(user: user, password: generated),
                from: request, context: context
            )
            response.status = .created
            response.headers[.location] = "/users/\(user.id)"
            return Self.noStore(response)
        } catch let error as AccountError {
            throw Self.problem(error)
        }
    }

    func get(context: AuthorizedContext<AdminOnly>) async throws -> UserView {
        do {
            return try await accounts.get(id: try Self.id(context.parameters), logger: context.logger)
        } catch let error as AccountError {
            throw Self.problem(error)
        }
    }

    func update(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> UserView {
        let id = try Self.id(context.parameters)
        // RFC 7396 merge patch, or plain JSON with the same meaning.
        let body = try await request.jsonObject(context: context, mergePatch: true)
        var reader = FieldReader(body, allowed: ["role", "disabled"])
        var role: Role?
        var disabled: Bool?
        if let value = body["role"], value != .null {
            if case .string(let text) = value, let parsed = Role(rawValue: text) { role = parsed } else { reader.fail("role", "must be admin or requester") }
        }
        if let value = body["disabled"], value != .null {
            if case .bool(let flag) = value { disabled = flag } else { reader.fail("disabled", "must be true or false") }
        }
        guard reader.errors.isEmpty else { throw ProblemError.invalid(reader.errors) }
        do {
            return try await accounts.update(id: id, role: role, disabled: disabled, actor: Self.actor(context), logger: context.logger)
        } catch let error as AccountError {
            throw Self.problem(error)
        }
    }

    func resetPassword(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> Response {
        do {
            let password = try await accounts.resetPassword(id: try Self.id(context.parameters), actor: Self.actor(context), logger: context.logger)
            return Self.noStore(try context.responseEncoder.encode(NewPassword(password: password), from: request, context: context))
        } catch let error as AccountError {
            throw Self.problem(error)
        }
    }

    func importUsers(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> Response {
        let (rows, atomic) = try await Self.importRows(request, context: context)
        do {
            let (results, committed) = try await accounts.importUsers(rows, atomic: atomic, actor: Self.actor(context), logger: context.logger)
            if !committed { throw Self.importRefused(results) }
            let answer = ImportAnswer(
                created: results.count { $0.outcome == "created" },
                updated: results.count { $0.outcome == "updated" },
                failed: results.count { $0.outcome == "failed" },
                results: results
            )
            return Self.noStore(try context.responseEncoder.encode(answer, from: request, context: context))
        } catch let aborted as ImportAborted {
            throw Self.importRefused(aborted.results)
        }
    }

    /// An atomic import with a failed row: 422 naming each failed row, with every result but
    /// no passwords (nothing was created).
    static func importRefused(_ results: [AccountService.ImportResult]) -> ProblemError {
        let cleaned = results.map { result -> AccountService.ImportResult in
            var result = result
            result.password = nil
            if result.outcome != "failed" { result.outcome = "unchanged" }
            return result
        }
        let failed = cleaned.filter { $0.outcome == "failed" }
        var problem = ProblemError.invalid(failed.map { FieldError(field: "users.\($0.row)", message: $0.error ?? "failed") })
        problem.detail = "\(failed.count) of \(cleaned.count) rows failed; nothing was changed"
        let encoder = JSONEncoder()
        if let data = try? encoder.encode(cleaned), let value = try? JSONDecoder().decode(JSONValue.self, from: data) {
            problem.extensions["results"] = value
        }
        problem.headers[.cacheControl] = "no-store"
        return problem
    }

    /// JSON `{"users": [{"username", "role"}], "atomic"}` or `text/csv` lines `username,role`
    /// with `?atomic=`.
    static func importRows(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> ([AccountService.ImportRow], Bool) {
        var atomic = true
        for (key, value) in request.uri.queryParameters {
            guard key == "atomic", value == "true" || value == "false" else {
                throw ProblemError.badRequest(key == "atomic" ? "atomic must be true or false" : "unknown query parameter '\(key)'")
            }
            atomic = value == "true"
        }
        guard let type = request.headers[.contentType].flatMap(MediaType.init(from:)) else {
            throw ProblemError.badRequest("Content-Type must be application/json or text/csv")
        }
        var rows: [AccountService.ImportRow] = []
        if type.type == .text, type.subType == "csv" {
            let buffer = try await request.body.collect(upTo: context.maxUploadSize)
            guard let text = String(data: Data(buffer.readableBytesView), encoding: .utf8) else {
                throw ProblemError.badRequest("The CSV body is not UTF-8")
            }
            var number = 0
            for line in text.split(whereSeparator: \.isNewline) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                if number == 0, fields == ["username", "role"] { continue }  // a header line
                number += 1
                rows.append(.init(row: number, username: fields.first ?? "", role: fields.count == 2 ? fields[1] : ""))
            }
        } else {
            let body = try await request.jsonObject(context: context)
            var reader = FieldReader(body, allowed: ["users", "atomic"])
            if let value = body["atomic"], value != .null {
                if case .bool(let flag) = value { atomic = flag } else { reader.fail("atomic", "must be true or false") }
            }
            if case .array(let items)? = body["users"] {
                // A row that cannot be read is a failed row, like any other bad row.
                for (index, item) in items.enumerated() {
                    guard case .object(let fields) = item else {
                        rows.append(.init(row: index + 1, username: "", role: "", problem: "must be an object {username, role}"))
                        continue
                    }
                    var row = FieldReader(fields, prefix: "", allowed: ["username", "role"])
                    let username = row.string("username", lengths: 1...256)
                    let role = row.string("role", lengths: 1...32)
                    let problem = row.errors.isEmpty ? nil : row.errors.map { "\($0.field) \($0.message)" }.joined(separator: "; ")
                    rows.append(.init(row: index + 1, username: username ?? "", role: role ?? "", problem: problem))
                }
            } else {
                reader.fail("users", "must be an array of {username, role}")
            }
            guard reader.errors.isEmpty else { throw ProblemError.invalid(reader.errors) }
        }
        guard !rows.isEmpty else { throw ProblemError.invalid([FieldError(field: "users", message: "lists no users")]) }
        guard rows.count <= AccountService.importLimit else {
            throw ProblemError.invalid([FieldError(field: "users", message: "at most \(AccountService.importLimit) rows")])
        }
        return (rows, atomic)
    }

    func auditEvents(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> AuditPage {
        var filter = AuditFilter()
        for (key, value) in request.uri.queryParameters {
            let text = String(value)
            switch key {
            case "actor": filter.actor = text
            case "action":
                guard Self.auditActions.contains(text) else { throw ProblemError.badRequest("action must be one of \(Self.auditActions.sorted().joined(separator: ", "))") }
                filter.action = text
            case "target_type":
                guard ["user", "booking", "webhook", "calendar_feed"].contains(text) else {
                    throw ProblemError.badRequest("target_type must be user, booking, webhook or calendar_feed")
                }
                filter.targetType = text
            case "from", "to":
                guard let date = RFC3339.parse(text) else { throw ProblemError.badRequest("\(key) must be an RFC 3339 date-time with offset") }
                if key == "from" { filter.from = date } else { filter.to = date }
            case "limit":
                guard let limit = Int(text), (1...200).contains(limit) else { throw ProblemError.badRequest("limit must be from 1 to 200") }
                filter.limit = limit
            case "cursor":
                guard let data = Data(base64URL: text), let decoded = String(data: data, encoding: .utf8) else {
                    throw ProblemError.badRequest("cursor is not one this server gave out")
                }
                let parts = decoded.split(separator: "|")
                guard parts.count == 2, let seconds = Double(parts[0]), let id = Int64(parts[1]) else {
                    throw ProblemError.badRequest("cursor is not one this server gave out")
                }
                filter.after = (Date(timeIntervalSince1970: seconds), id)
            default:
                throw ProblemError.badRequest("unknown query parameter '\(key)'")
            }
        }
        let (events, next) = try await audit.list(filter, logger: context.logger)
        // The cursor keeps microseconds exactly: PostgreSQL's precision.
        let cursor = next.map { Data("\(String(format: "%.6f", $0.0.timeIntervalSince1970))|\($0.1)".utf8).base64URLEncoded() }
        return AuditPage(events: events, next_cursor: cursor)
    }

    /// Every action the audit trail records (the contract's list).
    static let auditActions: Set<String> = [
        "booking.submitted", "booking.accepted", "booking.rejected", "booking.cancelled", "booking.expired", "booking.deleted",
        "user.created", "user.updated", "user.password_reset", "user.password_changed", "user.logged_out",
        "webhook.created", "webhook.updated", "webhook.deleted", "calendar_feed.created", "calendar_feed.revoked",
    ]

    static func id(_ parameters: Parameters) throws(ProblemError) -> Int64 {
        guard let text = parameters.get("id"), text.first != "0", text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let id = Int64(text), id > 0
        else {
            throw .notFound("No such user")
        }
        return id
    }

    static func problem(_ error: AccountError) -> ProblemError {
        switch error {
        case .notFound: return .notFound("No such user")
        case .usernameTaken(let name): return .conflict("A user named \(name) exists already")
        case .lastAdmin: return .conflict("That would leave no enabled admin")
        case .invalid(let errors): return .invalid(errors)
        }
    }
}

extension UserView: ResponseEncodable {}
