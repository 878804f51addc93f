import Foundation
import HTTPTypes
import Hummingbird

/// HEAD is GET without the body (RFC 9110 §9.3.2), for every route at once. The router picks a
/// route by method before any middleware runs, so the rewrite happens in front of it.
struct HeadResponderBuilder<Inner: HTTPResponderBuilder>: HTTPResponderBuilder {
    let inner: Inner

    func buildResponder() -> HeadResponder<Inner.Responder> {
        HeadResponder(inner: inner.buildResponder())
    }
}

struct HeadResponder<Inner: HTTPResponder>: HTTPResponder {
    typealias Context = Inner.Context
    let inner: Inner

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .head else { return try await inner.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        var response = try await inner.respond(to: Request(head: head, body: request.body), context: context)
        let length = response.headers[.contentLength] ?? response.body.contentLength.map(String.init)
        response.body = .init()
        response.headers[.contentLength] = length
        return response
    }
}
