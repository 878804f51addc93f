import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import BookingAPI

/// The console's files as the server serves them (the page itself is exercised in a browser
/// separately; see README "The console").
@Suite struct ConsoleServingTests {
    @Test func theRootAndAppRedirectAndThePageCarriesAStrictPolicy() async throws {
        let app = try await TestApp.make()
        try await app.test { client in
            let root = try await client.send(.get, "/")
            #expect(root.status == .found)
            #expect(root.headers[.location] == "/app/")
            let bare = try await client.send(.get, "/app")
            #expect(bare.status == .movedPermanently)
            #expect(bare.headers[.location] == "/app/")

            let page = try await client.send(.get, "/app/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let policy = try #require(page.headers[HTTPField.Name("Content-Security-Policy")!])
            #expect(policy.contains("default-src 'none'"))
            #expect(policy.contains("script-src 'self'"))
            #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval") && !policy.contains("http"), "\(policy)")
            #expect(policy.contains("frame-ancestors 'none'"))
            #expect(page.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(page.headers[HTTPField.Name("X-Request-ID")!] != nil)

            // Nothing inline, nothing from elsewhere: every script and stylesheet is a file of ours.
            let html = page.text
            #expect(html.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) == nil, "no inline event handlers")
            #expect(html.range(of: #"<script(?![^>]*\ssrc=)"#, options: .regularExpression) == nil, "no inline script")
            #expect(html.range(of: #"(src|href)="(https?:)?//"#, options: .regularExpression) == nil, "no third-party origin")
            #expect(!html.contains("style="))

            let modules = ["app.js", "api.js", "ui.js", "bookings.js", "queue.js", "booking.js", "users.js", "webhooks.js", "feeds.js", "submit.js", "mine.js"]
            for (file, type) in modules.map({ ($0, "text/javascript; charset=utf-8") }) + [("style.css", "text/css; charset=utf-8")] {
                let served = try await client.send(.get, "/app/\(file)")
                #expect(served.status == .ok, "\(file)")
                #expect(served.headers[.contentType] == type)
                #expect(served.headers[HTTPField.Name("Content-Security-Policy")!] != nil)
                if file.hasSuffix(".js") {
                    let script = served.text
                    #expect(!script.contains("localStorage") && !script.contains("sessionStorage"), "no token in web storage: \(file)")
                    #expect(!script.contains("innerHTML") && !script.contains("console.log"), "no HTML from data, no logging: \(file)")
                }
            }
            let session = try await client.send(.get, "/app/api.js").text
            #expect(session.contains(#"session: "cookie""#), "the refresh token goes into the HttpOnly cookie")

            for missing in ["/app/nothing.js", "/app/..%2FPackage.swift", "/app/%2e%2e", "/app/index.html%00"] {
                #expect(try await client.send(.get, missing).status == .notFound, "\(missing)")
            }
            #expect(try await client.send(.head, "/app/").status == .ok)
        }
    }
}
