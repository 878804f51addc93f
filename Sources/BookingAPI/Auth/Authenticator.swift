import Foundation
import Hummingbird
import Synchronization
import Logging

/// Resolves `Authorization: Bearer` into the caller's current token state (`SignedInUsers`:
/// memory that PostgreSQL invalidates, else a read of the user's row, never its hash). A
/// missing token leaves the request anonymous (the group's context then refuses it); a bad one
/// is refused here.
struct Authenticator: RouterMiddleware {
    typealias Context = AppRequestContext
    let tokens: TokenService
    let users: SignedInUsers

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            return try await next(request, context)
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw ProblemError.unauthorized("Authorization must be a Bearer token", tokenWasSent: true)
        }
        let verified = try await tokens.verify(String(parts[1]).trimmingCharacters(in: .whitespaces))
        guard let user = try await users.find(id: verified.userID, logger: context.logger),
            !user.disabled, user.tokenVersion == verified.tokenVersion
        else {
            throw ProblemError.unauthorized("The access token has been revoked", tokenWasSent: true)
        }
        var context = context
        context.identity = AuthenticatedUser(id: user.id, username: user.username, role: user.role)
        context.state.userID.withLock { $0 = user.id }
        context.logger[metadataKey: "user_id"] = .stringConvertible(user.id)
        return try await next(request, context)
    }
}
