import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// `POST /token` (password and refresh grants), `POST /token/revoke`, `POST /logout`, `GET /me`,
/// `POST /me/password`, `GET /.well-known/jwks.json`.
struct AuthController {
    let users: any UserStore
    let hasher: PasswordHasher
    let tokens: TokenService
    let throttle: LoginThrottle
    let trustedProxies: [IPNetwork]
    let sessions: SessionStore
    let accounts: AccountService
    /// `Secure` on the refresh cookie: in `prod`, where TLS ends in front of the service.
    var secureCookies = false

    /// Browsers keep the refresh token here instead of in script-readable storage: asked for with
    /// `session=cookie` on a password grant, it is an HttpOnly, SameSite=Strict cookie sent only
    /// to `/token` and `/token/revoke`, which read it when the form carries no token.
    static let refreshCookie = "booking_refresh"

    struct TokenResponse: ResponseEncodable {
        let access_token: String
        let token_type: String
        let expires_in: Int
        /// Absent when the refresh token went into the cookie instead.
        let refresh_token: String?
        let refresh_expires_in: Int

        enum CodingKeys: String, CodingKey { case access_token, token_type, expires_in, refresh_token, refresh_expires_in }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(access_token, forKey: .access_token)
            try container.encode(token_type, forKey: .token_type)
            try container.encode(expires_in, forKey: .expires_in)
            try container.encodeIfPresent(refresh_token, forKey: .refresh_token)
            try container.encode(refresh_expires_in, forKey: .refresh_expires_in)
        }
    }

    struct MeResponse: ResponseEncodable {
        let id: Int64
        let username: String
        let role: Role
    }

    func register(publicRoutes: RouterGroup<AppRequestContext>, userRoutes: RouterGroup<AuthorizedContext<AnyAuthenticatedUser>>) {
        publicRoutes.post("token") { request, context in try await self.token(request, context: context) }
        publicRoutes.post("token/revoke") { request, context in try await self.revoke(request, context: context) }
        publicRoutes.get(".well-known/jwks.json") { _, _ in self.jwks() }
        userRoutes.get("me") { _, context in
            MeResponse(id: context.user.id, username: context.user.username, role: context.user.role)
        }
        userRoutes.post("me/password") { request, context in try await self.changePassword(request, context: context) }
        userRoutes.post("logout") { _, context in try await self.logout(context: context) }
    }

    func jwks() -> Response {
        let data = (try? JSONEncoder.bookingAPI.encode(tokens.jwks)) ?? Data()
        return Response(
            status: .ok,
            headers: [.contentType: "application/jwk-set+json", .cacheControl: "public, max-age=300"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    func token(_ request: Request, context: AppRequestContext) async throws -> Response {
        let fields = try await request.stringFields(context: context)
        switch fields["grant_type"] {
        case nil, "password":
            return try await passwordGrant(fields, request: request, context: context)
        case "refresh_token":
            return try await refreshGrant(fields, request: request, context: context)
        default:
            var problem = ProblemError.badRequest("grant_type must be password or refresh_token")
            problem.extensions["error"] = .string("unsupported_grant_type")
            throw problem
        }
    }

    func passwordGrant(_ fields: [String: String], request: Request, context: AppRequestContext) async throws -> Response {
        var missing: [FieldError] = []
        if (fields["username"] ?? "").isEmpty { missing.append(.init(field: "username", message: "is required")) }
        if (fields["password"] ?? "").isEmpty { missing.append(.init(field: "password", message: "is required")) }
        for (field, value) in fields where value.unicodeScalars.contains("\u{0}") {
            missing.append(.init(field: field, message: "must not contain NUL characters"))
        }
        if let mode = fields["session"], mode != "cookie" { missing.append(.init(field: "session", message: "must be cookie when given")) }
        guard missing.isEmpty, let username = fields["username"], let password = fields["password"] else {
            throw ProblemError.invalid(missing)
        }
        let user = try await checkPassword(username: username, password: password, request: request, context: context)
        guard !user.disabled else {
            Self.count("disabled")
            throw ProblemError.forbidden("This account is disabled")
        }
        if hasher.needsRehash(user.passwordHash) {
            // Same password, stronger parameters; a busy pool just leaves it for next time.
            if let stronger = try? await hasher.hash(password) {
                try await users.upgradeHash(id: user.id, from: user.passwordHash, to: stronger, logger: context.logger)
            }
        }
        let session = try await sessions.start(userID: user.id, tokenVersion: user.tokenVersion, logger: context.logger)
        Self.count("success")
        return try await tokenAnswer(user: user, session: session, inCookie: fields["session"] == "cookie", request: request, context: context)
    }

    /// Admits, checks and counts one password attempt for `username` (the throttle, the hash,
    /// the failure count). Throws 429, 401 or 503; returns the user when the password is right.
    func checkPassword(username: String, password: String, request: Request, context: some RequestContext & HasPeerAddress) async throws -> UserRecord {
        let logger = context.logger
        // Any text may arrive as a username; the throttle keys on at most 256 characters of it
        // (the column's limit), so an absurd name is throttled, not a database error.
        let throttleKey = String(username.prefix(256))
        let address = ClientAddress.resolve(
            peer: context.peerAddress,
            forwardedFor: request.headers[.xForwardedFor],
            trusted: trustedProxies
        )
        switch try await throttle.admit(username: throttleKey, address: address, logger: logger) {
        case .admitted:
            break
        case .usernameBlocked(let seconds):
            Self.count("throttled")
            throw ProblemError(.tooManyRequests, detail: "Too many failed logins; try again later", headers: [.retryAfter: String(seconds)])
        case .addressBlocked(let seconds):
            Self.count("throttled_address")
            throw ProblemError(.tooManyRequests, detail: "Too many failed logins from this address; try again later", headers: [.retryAfter: String(seconds)])
        }
        let user = try await users.find(username: username, logger: logger)
        let matches: Bool
        do {
            if let user {
                matches = try await hasher.verify(password, against: user.passwordHash)
            } else {
                matches = try await hasher.verifyAgainstDummy(password)
            }
        } catch is PasswordHasher.Saturated {
            Self.count("overloaded")
            // Not checked, so not a failure: give the attempt back.
            try? await throttle.giveBack(username: throttleKey, logger: logger)
            throw ProblemError.unavailable("The server is busy checking passwords; retry shortly", retryAfter: 1)
        }
        guard matches, let user else {
            try await throttle.recordFailure(address: address, logger: logger)
            Self.count("bad_credentials")
            throw ProblemError(.unauthorized, detail: "Incorrect username or password", headers: [.wwwAuthenticate: "Bearer"])
        }
        // The password was right: the attempt counted before the check is cleared.
        do {
            try await throttle.reset(username: throttleKey, logger: logger)
        } catch {
            logger.warning("could not clear the login throttle after a successful login", metadata: ["error": .string("\(type(of: error))")])
        }
        return user
    }

    func tokenAnswer(
        user: UserRecord, session: SessionStore.Issued, inCookie: Bool = false, request: Request, context: some RequestContext
    ) async throws -> Response {
        let issued = try await tokens.issue(userID: user.id, username: user.username, role: user.role, tokenVersion: user.tokenVersion)
        var response = try context.responseEncoder.encode(
            TokenResponse(access_token: issued.token, token_type: "bearer", expires_in: issued.expiresIn,
                          refresh_token: inCookie ? nil : session.token, refresh_expires_in: session.expiresIn),
            from: request,
            context: context
        )
        if inCookie { setCookies(&response.headers, token: session.token, maxAge: session.expiresIn) }
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPField.Name("Pragma")!] = "no-cache"
        return response
    }

    /// RFC 6749 §6. No password hash: a refresh is database work only.
    func refreshGrant(_ fields: [String: String], request: Request, context: AppRequestContext) async throws -> Response {
        let fromCookie = fields["refresh_token"] == nil
        guard let token = fields["refresh_token"] ?? Self.cookieToken(request), (1...512).contains(token.count) else {
            throw Self.invalidGrant("refresh_token is required")
        }
        switch try await sessions.refresh(token, logger: context.logger) {
        case .rotated(let session, let user):
            SessionMetrics.refresh("success")
            return try await tokenAnswer(user: user, session: session, inCookie: fromCookie, request: request, context: context)
        case .refused(let reason):
            SessionMetrics.refresh(reason)
            if reason == "reused" {
                SessionMetrics.revocation("reuse_detected")
                context.logger.warning("a spent refresh token was presented again; its session is revoked")
            }
            throw Self.invalidGrant("The refresh token is invalid, expired or revoked")
        }
    }

    /// The refresh cookie, and beside it `booking_session=1`, readable by the page's script and
    /// holding nothing secret: it tells the console that a refresh is worth trying, so a page
    /// opened without a session makes no request that fails.
    func setCookies(_ headers: inout HTTPFields, token: String, maxAge: Int) {
        headers.append(HTTPField(name: .setCookie, value: cookie(token, maxAge: maxAge)))
        headers.append(HTTPField(
            name: .setCookie,
            value: "booking_session=\(maxAge > 0 ? "1" : ""); Path=/; Max-Age=\(maxAge); SameSite=Strict" + (secureCookies ? "; Secure" : "")
        ))
    }

    func cookie(_ value: String, maxAge: Int) -> String {
        "\(Self.refreshCookie)=\(value); Path=/token; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secureCookies ? "; Secure" : "")
    }

    /// The refresh token from the `Cookie` header(s), when the browser sent one.
    static func cookieToken(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == refreshCookie {
                    let value = parts[1].trimmingCharacters(in: .whitespaces)
                    return value.isEmpty ? nil : value
                }
            }
        }
        return nil
    }

    static func invalidGrant(_ detail: String) -> ProblemError {
        var problem = ProblemError(.unauthorized, detail: detail, headers: [.wwwAuthenticate: "Bearer", .cacheControl: "no-store"])
        problem.extensions["error"] = .string("invalid_grant")
        return problem
    }

    /// RFC 7009: always 200 once the request is well-formed, whatever the token was.
    func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        let fields = try await request.stringFields(context: context)
        let fromCookie = fields["token"] == nil
        guard let token = fields["token"] ?? Self.cookieToken(request), !token.isEmpty else {
            var problem = ProblemError.badRequest("token is required")
            problem.extensions["error"] = .string("invalid_request")
            throw problem
        }
        if token.count <= 512, try await sessions.revoke(token, logger: context.logger) {
            SessionMetrics.revocation("revoked")
        }
        var response = Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        response.headers[.cacheControl] = "no-store"
        // The browser forgets the cookie with the session.
        if fromCookie { setCookies(&response.headers, token: "", maxAge: 0) }
        return response
    }

    func logout(context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Response {
        try await accounts.logout(userID: context.user.id, actor: context.user.auditActor(context.requestID), logger: context.logger)
        SessionMetrics.revocation("logout")
        return Response(status: .noContent)
    }

    func changePassword(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Response {
        let body = try await request.jsonObject(context: context)
        var reader = FieldReader(body, allowed: ["current_password", "new_password"])
        var current: String?
        var new: String?
        for (key, target) in [("current_password", 0), ("new_password", 1)] {
            guard let value = body[key], value != .null else {
                reader.fail(key, "is required")
                continue
            }
            guard case .string(let text) = value, !text.unicodeScalars.contains("\u{0}") else {
                reader.fail(key, "must be a string")
                continue
            }
            if target == 0 { current = text } else { new = text }
        }
        guard reader.errors.isEmpty, let current, let new else { throw ProblemError.invalid(reader.errors) }
        // A wrong current password counts as a failed login.
        let user = try await checkPassword(username: context.user.username, password: current, request: request, context: context)
        do {
            let (updated, session) = try await accounts.changeOwnPassword(user: user, to: new, actor: context.user.auditActor(context.requestID), logger: context.logger)
            return try await tokenAnswer(user: updated, session: session, request: request, context: context)
        } catch AccountError.invalid(let errors) {
            throw ProblemError.invalid(errors)
        }
    }

    static func count(_ outcome: String) {
        Counter(label: MetricNames.logins, dimensions: [("outcome", outcome)]).increment()
    }
}

/// Contexts that know the TCP peer's address.
protocol HasPeerAddress {
    var peerAddress: String? { get }
}

extension AppRequestContext: HasPeerAddress {}

extension AuthorizedContext: HasPeerAddress {}

extension AuthenticatedUser {
    func auditActor(_ requestID: String) -> AuditActor { AuditActor(name: username, userID: id, requestID: requestID) }
}
