import Foundation
/// The caller, as its current `users` row says — never as the token claims.
public struct AuthenticatedUser: Sendable, Equatable {
    public let id: Int64
    public let username: String
    public let role: Role
}
