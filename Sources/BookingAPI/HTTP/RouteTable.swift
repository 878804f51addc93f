import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Which methods each route path serves, for `405 Method Not Allowed` with `Allow`. Filled once
/// from the router after every route is registered.
final class RouteTable: Sendable {
    private struct Entry {
        let segments: [Substring]
        var methods: Set<String>
    }

    private let entries = Mutex<[Entry]>([])

    func record(_ routes: [Router<AppRequestContext>.RouteDescription]) {
        var built: [String: Entry] = [:]
        for route in routes {
            let path = route.path.description
            let segments = path.split(separator: "/")
            built[path, default: Entry(segments: segments, methods: [])].methods.insert(route.method.rawValue)
        }
        entries.withLock { $0 = Array(built.values) }
    }

    /// The methods some route serves at `path` (HEAD wherever GET is), or nil when no route
    /// has this path at all.
    func allowedMethods(for path: String) -> [String]? {
        let segments = path.split(separator: "/")
        var methods = Set<String>()
        entries.withLock { entries in
            for entry in entries where Self.matches(entry.segments, segments) {
                methods.formUnion(entry.methods)
            }
        }
        guard !methods.isEmpty else { return nil }
        if methods.contains("GET") { methods.insert("HEAD") }
        return methods.sorted()
    }

    private static func matches(_ template: [Substring], _ segments: [Substring]) -> Bool {
        guard template.count == segments.count else { return false }
        for (pattern, segment) in zip(template, segments) where !pattern.hasPrefix(":") && pattern != "*" && pattern != segment {
            return false
        }
        return true
    }
}
