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
        (.get, "/calendar-feeds", nil),
        (.post, "/calendar-feeds", ["name": "feed"]),
        (.delete, "/calendar-feeds/1", nil),
    ] }
    static var userRoutes: [(HTTPRequest.Method, String, [String: Any]?)] { [
        (.get, "/me", nil),
        (.get, "/booking", nil),
        (.post, "/booking", bookingBody()),
        (.get, "/booking/1", nil),
        (.post, "/booking/1/cancel", nil),
        (.get, "/booking/1/calendar.ics", nil),
        (.get, "/availability?from=2031-01-01T00:00:00Z&to=2031-01-02T00:00:00Z", nil),
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
                let parts = path.split(separator: "?", maxSplits: 1)
                for variant in [path, parts[0] + "/" + (parts.count > 1 ? "?" + parts[1] : "")] {
                    let response = try await client.send(method, variant, json: body)
                    #expect(response.status == .unauthorized, "\(method) \(variant)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(method) \(variant)")
                }
            }
            #expect(try await client.send(.get, "/booking").headers[.init("X-Request-ID")!] != nil)
        }
    }
}
