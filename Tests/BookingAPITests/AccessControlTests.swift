import Foundation
import HTTPTypes
import Testing

@testable import BookingAPI

@Suite struct AccessControlTests {
    static var adminRoutes: [(HTTPRequest.Method, String, [String: Any]?)] { [
        (.post, "/booking/accept", ["id": 1]),
        (.post, "/booking/reject", ["id": 1]),
        (.delete, "/booking/1", nil),
        (.get, "/booking/1/history", nil),
    ] }
    static var userRoutes: [(HTTPRequest.Method, String, [String: Any]?)] { [
        (.get, "/me", nil),
        (.get, "/booking", nil),
        (.post, "/booking", bookingBody()),
        (.get, "/booking/1", nil),
    ] }

    @Test func requestersAreForbiddenEveryAdminRoute() async throws {
        let app = try await TestApp.make()
        try await app.createUser("rita", role: .requester)
        try await app.test { client in
            let token = try await client.token("rita")
            for (method, path, body) in Self.adminRoutes {
                let response = try await client.send(method, path, token: token, json: body)
                #expect(response.status == .forbidden, "\(method) \(path)")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
        }
    }

    @Test func noTokenIsUnauthorizedOnEveryProtectedRoute() async throws {
        let app = try await TestApp.make()
        try await app.test { client in
            for (method, path, body) in Self.adminRoutes + Self.userRoutes {
                for variant in [path, path + "/"] {
                    let response = try await client.send(method, variant, json: body)
                    #expect(response.status == .unauthorized, "\(method) \(variant)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(method) \(variant)")
                }
            }
            #expect(try await client.send(.get, "/booking").headers[.init("X-Request-ID")!] != nil)
        }
    }
}
