import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics

/// `POST /token`, `GET /me`, `GET /.well-known/jwks.json`.
struct AuthController {
    let users: any UserStore
    let hasher: PasswordHasher
    let tokens: TokenService
    let throttle: LoginThrottle
    let trustedProxies: [IPNetwork]

    struct TokenResponse: ResponseEncodable {
        let access_token: String
        let token_type: String
        let expires_in: Int
    }

    struct MeResponse: ResponseEncodable {
        let id: Int64
        let username: String
        let role: Role
    }

    func register(publicRoutes: RouterGroup<AppRequestContext>, userRoutes: RouterGroup<AuthorizedContext<AnyAuthenticatedUser>>) {
        publicRoutes.post("token") { request, context in try await self.token(request, context: context) }
        publicRoutes.get(".well-known/jwks.json") { _, _ in self.jwks() }
        userRoutes.get("me") { _, context in
            MeResponse(id: context.user.id, username: context.user.username, role: context.user.role)
        }
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
        if let grant = fields["grant_type"], grant != "password" {
            throw ProblemError.badRequest("grant_type must be password")
        }
        var missing: [FieldError] = []
        if (fields["username"] ?? "").isEmpty { missing.append(.init(field: "username", message: "is required")) }
        if (fields["password"] ?? "").isEmpty { missing.append(.init(field: "password", message: "is required")) }
        for (field, value) in fields where value.unicodeScalars.contains("\u{0}") {
            missing.append(.init(field: field, message: "must not contain NUL characters"))
        }
        guard missing.isEmpty, let username = fields["username"], let password = fields["password"] else {
            throw ProblemError.invalid(missing)
        }
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
        guard !user.disabled else {
            Self.count("disabled")
            throw ProblemError.forbidden("This account is disabled")
        }
        if hasher.needsRehash(user.passwordHash) {
            // Same password, stronger parameters; a busy pool just leaves it for next time.
            if let stronger = try? await hasher.hash(password) {
                try await users.upgradeHash(id: user.id, from: user.passwordHash, to: stronger, logger: logger)
            }
        }
        let issued = try await tokens.issue(userID: user.id, username: user.username, role: user.role, tokenVersion: user.tokenVersion)
        Self.count("success")
        var response = try context.responseEncoder.encode(
            TokenResponse(access_token: issued.token, token_type: "bearer", expires_in: issued.expiresIn),
            from: request,
            context: context
        )
        response.headers[.cacheControl] = "no-store"
        response.headers[HTTPField.Name("Pragma")!] = "no-cache"
        return response
    }

    static func count(_ outcome: String) {
        Counter(label: MetricNames.logins, dimensions: [("outcome", outcome)]).increment()
    }
}
