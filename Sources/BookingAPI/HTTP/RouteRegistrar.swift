import Foundation
import Hummingbird

/// The only way routes get registered. A route is either in `publicRoutes()` — named as public
/// where it is added — or in a group whose context type demands an authenticated user with an
/// allowed role; there is no third way, so a route cannot ship without a decision on access.
/// Every route is also recorded, so tests can compare the router with the OpenAPI document.
struct RouteRegistrar {
    let router: Router<AppRequestContext>
    let authenticator: Authenticator

    /// Routes anyone may call (probes, login, public keys, documentation).
    func publicRoutes(_ path: RouterPath = "") -> RouterGroup<AppRequestContext> {
        router.group(path)
    }

    /// Routes for authenticated users whose role `Policy` allows.
    func routes<Policy: AccessPolicy>(_ path: RouterPath = "", for policy: Policy.Type) -> RouterGroup<AuthorizedContext<Policy>> {
        router.group(path)
            .add(middleware: authenticator)
            .group(context: AuthorizedContext<Policy>.self)
    }
}
