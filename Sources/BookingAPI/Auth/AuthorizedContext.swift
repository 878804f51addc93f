import Foundation
import Hummingbird

/// Who may use a route group. Declared once per group, as the group's context type.
public protocol AccessPolicy: Sendable {
    static var allowedRoles: Set<Role> { get }
}

public enum AdminOnly: AccessPolicy {
    public static var allowedRoles: Set<Role> { [.admin] }
}

public enum AnyAuthenticatedUser: AccessPolicy {
    public static var allowedRoles: Set<Role> { Set(Role.allCases) }
}

/// The context of every protected route. It cannot be made without an authenticated user
/// whose current role the policy allows, so a handler can never run for anyone else.
public struct AuthorizedContext<Policy: AccessPolicy>: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let user: AuthenticatedUser
    public let requestID: String
    public let peerAddress: String?

    public init(context: AppRequestContext) throws {
        guard let user = context.identity else {
            throw ProblemError.unauthorized("An access token is required", tokenWasSent: false)
        }
        guard Policy.allowedRoles.contains(user.role) else {
            throw ProblemError.forbidden()
        }
        self.coreContext = context.coreContext
        self.user = user
        self.requestID = context.requestID
        self.peerAddress = context.peerAddress
    }

    public var maxUploadSize: Int { RequestLimits.maxBodyBytes }
    public var responseEncoder: JSONEncoder { .bookingAPI }
}
