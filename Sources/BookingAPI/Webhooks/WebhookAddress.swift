import Foundation
import NIOPosix

/// Where a webhook may be sent. A URL is checked when a subscription is saved and again before
/// every attempt; the attempt then connects to the very address that was checked (see
/// `WebhookClients`), so a name that resolves elsewhere by the time of sending (DNS rebinding)
/// cannot reach a private network.
struct WebhookTarget: Sendable, Equatable {
    let url: String
    let isHTTPS: Bool
    let host: String
    let port: Int

    static let maximumLength = 2048

    /// Parses and checks the form of a URL: absolute http(s), a host, no user or password.
    /// `http` only where private networks are allowed (tests, private deployments).
    static func parse(_ text: String, allowPrivateNetworks: Bool) -> Result<WebhookTarget, WebhookURLError> {
        guard text.utf8.count <= maximumLength else { return .failure(.invalid("must be at most \(maximumLength) bytes")) }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return .failure(.invalid("must be an absolute http or https URL"))
        }
        guard scheme == "https" || (scheme == "http" && allowPrivateNetworks) else {
            return .failure(.invalid(allowPrivateNetworks ? "must use http or https" : "must use https"))
        }
        guard components.user == nil, components.password == nil else {
            return .failure(.invalid("must not carry a user name or password"))
        }
        guard components.fragment == nil else { return .failure(.invalid("must not have a fragment")) }
        guard var host = components.host, !host.isEmpty else { return .failure(.invalid("must name a host")) }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { return .failure(.invalid("has a port out of range")) }
        return .success(WebhookTarget(url: text, isHTTPS: scheme == "https", host: host.lowercased(), port: port))
    }
}

enum WebhookURLError: Error, Equatable {
    case invalid(String)
    case unresolvable
    case notAllowed(String)

    var message: String {
        switch self {
        case .invalid(let reason): return reason
        case .unresolvable: return "names a host that does not resolve"
        case .notAllowed(let address): return "resolves to \(address), a loopback, private, link-local or multicast address"
        }
    }
}

enum WebhookAddress {
    /// Networks no webhook may reach unless `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true`: "this"
    /// network, private (RFC 1918, shared CGNAT, unique local), loopback, link-local, multicast,
    /// reserved and documentation ranges, and the IPv6 prefixes that embed IPv4 addresses.
    static let refused: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "2002::/16",
        "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    ].map { IPNetwork($0)! }

    static func isAllowed(_ address: IPAddress) -> Bool {
        // IPAddress reads an IPv4-mapped IPv6 address as IPv4, so ::ffff:127.0.0.1 is loopback.
        !refused.contains { $0.contains(address) }
    }

    /// Every address the host resolves to, on NIO's blocking-I/O pool (getaddrinfo blocks), and
    /// within `timeout`: a resolver that does not answer is an unresolvable host.
    static func resolve(_ host: String, timeout: Duration = .seconds(5)) async -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        return await withTaskGroup(of: [IPAddress]?.self) { group in
            group.addTask { try? await NIOThreadPool.singleton.runIfActive { lookUp(host) } }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? []
        }
    }

    private static func lookUp(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let list else { return [] }
        defer { freeaddrinfo(list) }
        var found: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let entry = cursor {
            if let address = entry.pointee.ai_addr, let text = numericHost(address, length: entry.pointee.ai_addrlen),
                let parsed = IPAddress(text), !found.contains(parsed)
            {
                found.append(parsed)
            }
            cursor = entry.pointee.ai_next
        }
        return found
    }

    private static func numericHost(_ address: UnsafeMutablePointer<sockaddr>, length: socklen_t) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        return String(cString: buffer)
    }

    /// The address to connect to: the first one the host resolves to, when none of them is
    /// refused (a name with one private address among public ones is refused as a whole).
    static func check(_ target: WebhookTarget, allowPrivateNetworks: Bool) async -> Result<IPAddress, WebhookURLError> {
        let addresses = await resolve(target.host)
        guard let first = addresses.first else { return .failure(.unresolvable) }
        if !allowPrivateNetworks, let refused = addresses.first(where: { !isAllowed($0) }) {
            return .failure(.notAllowed(refused.description))
        }
        return .success(first)
    }
}
