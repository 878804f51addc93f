import Foundation
import HTTPTypes
import Hummingbird

/// The browser console: static files shipped in the package (`Resources/console`), read once at
/// start-up and served from memory under `/app/` with a strict Content-Security-Policy: scripts,
/// styles and requests from this origin only, no inline script, no framing.
struct ConsoleController {
    let files: [String: (type: String, body: ByteBuffer)]

    static let securityHeaders: HTTPFields = [
        HTTPField.Name("Content-Security-Policy")!:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        .cacheControl: "no-cache",
    ]

    static let types = ["html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml"]

    /// Every file of the console, by name; nil when the resources are missing.
    static func load() -> ConsoleController? {
        guard let directory = Bundle.module.url(forResource: "console", withExtension: nil),
            let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        else { return nil }
        var files: [String: (type: String, body: ByteBuffer)] = [:]
        for name in names {
            guard let type = types[(name as NSString).pathExtension],
                let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path)
            else { continue }
            files[name] = (type, ByteBuffer(bytes: data))
        }
        return files["index.html"] == nil ? nil : ConsoleController(files: files)
    }

    func register(publicRoutes: RouterGroup<AppRequestContext>) {
        publicRoutes.get("/") { _, _ in
            // The router answers `/` for the root only; anything else is not this route.
            Self.redirect(to: "/app/", status: .found)
        }
        publicRoutes.get("app") { request, _ in
            // `/app` → `/app/` (the contract's one exception to the trailing-slash rule), so that
            // the page's relative asset paths resolve under /app/.
            request.uri.path.hasSuffix("/") ? try self.serve("index.html") : Self.redirect(to: "/app/", status: .movedPermanently)
        }
        publicRoutes.get("app/:file") { _, context in
            try self.serve(context.parameters.get("file") ?? "")
        }
    }

    static func redirect(to location: String, status: HTTPResponse.Status) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        return Response(status: status, headers: headers)
    }

    func serve(_ name: String) throws(ProblemError) -> Response {
        // Only names that were read at start-up: nothing from the request reaches the disk.
        guard let file = files[name] else { throw .notFound("No such file in the console") }
        var headers = Self.securityHeaders
        headers[.contentType] = file.type
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.body))
    }
}
