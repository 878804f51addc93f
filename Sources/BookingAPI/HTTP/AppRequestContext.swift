import Foundation
import Hummingbird
import Logging
import Synchronization

/// Per-request facts that outer middleware (logging, metrics) reads after inner layers set them.
public final class RequestState: Sendable {
    let userID = Mutex<Int64?>(nil)
    public init() {}
}

/// The context of every request before authentication.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String
    public let state: RequestState
    /// Set by `Authenticator` from the user's current row.
    public var identity: AuthenticatedUser?
    /// The TCP peer's address (nil in router tests).
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.state = RequestState()
        self.identity = nil
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }

    /// Bodies over 64 KiB are refused with 413.
    public var maxUploadSize: Int { RequestLimits.maxBodyBytes }
    public var responseEncoder: JSONEncoder { .bookingAPI }
}

public enum RequestLimits {
    public static let maxBodyBytes = 64 * 1024
}

extension JSONEncoder {
    /// Dates as RFC 3339 in UTC (`2026-11-23T15:00:00Z`), keys in a stable order. One shared
    /// instance: its configuration never changes and encoding does not mutate it.
    static let bookingAPI: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}
