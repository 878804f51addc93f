import Foundation

/// Who a request comes from, for the per-address login limit: the TCP peer, or — when the peer
/// is a trusted proxy — the first address in `X-Forwarded-For`, read from the right, that is not
/// itself a trusted proxy. A client cannot pick its own address by sending the header, since
/// only what trusted proxies appended is believed.
enum ClientAddress {
    static func resolve(peer: String?, forwardedFor: String?, trusted: [IPNetwork]) -> String {
        guard let peer, let peerAddress = IPAddress(peer) else { return peer ?? "unknown" }
        guard trusted.contains(where: { $0.contains(peerAddress) }), let forwardedFor else { return peerAddress.description }
        var candidate = peerAddress
        for hop in forwardedFor.split(separator: ",").reversed() {
            guard let address = IPAddress(hop.trimmingCharacters(in: .whitespaces)) else {
                // A malformed hop: believe nothing further left of it.
                return candidate.description
            }
            candidate = address
            if !trusted.contains(where: { $0.contains(address) }) { return address.description }
        }
        return candidate.description
    }
}
