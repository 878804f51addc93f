import Foundation
import HTTPTypes
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Connections served at once, across the server.
final class ConnectionLimiter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false (and not counted) when the limit is reached.
    func admit() -> Bool {
        while true {
            let current = open.load(ordering: .relaxed)
            guard current < limit else { return false }
            if open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged { return true }
        }
    }

    func leave() { open.wrappingSubtract(1, ordering: .relaxed) }
}

/// What the HTTP stack does not do by itself, per connection:
/// - a request's head and body must arrive within `readTimeout` of its first byte (slowloris);
///   idle connections are closed by Hummingbird's idle timeout;
/// - past `limiter.limit` connections, a new one gets a 503 problem document and is closed;
/// - a request head the parser refuses (too many or too large headers, an unknown method, a
///   path that is not UTF-8) is answered with a 400 problem document instead of an empty 400.
///
/// It sits after the HTTP codec, and puts a `RawBytesObserver` at the front of the pipeline to
/// see a request's first byte before the codec has a whole head.
final class EdgeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let readTimeout: TimeAmount
    let limiter: ConnectionLimiter
    let logger: Logger
    private var readDeadline: Scheduled<Void>?
    private var requestsRead = 0
    private var responsesWritten = 0
    private var receivingBody = false
    private weak var context: ChannelHandlerContext?

    init(readTimeout: Duration, limiter: ConnectionLimiter, logger: Logger) {
        self.readTimeout = .init(readTimeout)
        self.limiter = limiter
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let observer = RawBytesObserver(edge: self, limiter: limiter)
        try? context.pipeline.syncOperations.addHandler(observer, position: .first)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readDeadline?.cancel()
        readDeadline = nil
    }

    /// The first bytes of a request arrived (or more bytes while one is being read).
    fileprivate func bytesArrived() {
        startReadDeadline()
    }

    private func startReadDeadline() {
        guard readDeadline == nil, let context else { return }
        readDeadline = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: readTimeout) { [weak self] in
            self?.readDeadlinePassed()
        }
    }

    private func readDeadlinePassed() {
        readDeadline = nil
        guard let context else { return }
        EdgeMetrics.closed(.readTimeout).increment()
        logger.debug("closing a connection: request not received within the read timeout")
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsRead += 1
            receivingBody = true
            startReadDeadline()
        case .body:
            break
        case .end:
            receivingBody = false
            readDeadline?.cancel()
            readDeadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { responsesWritten += 1 }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Mid-body, Hummingbird owns the request and its answer; between requests, the parser
        // refused a head that no handler will ever see, so the answer is ours.
        guard !receivingBody, requestsRead == responsesWritten, context.channel.isActive else {
            context.fireErrorCaught(error)
            return
        }
        EdgeMetrics.closed(.unparsable).increment()
        readDeadline?.cancel()
        readDeadline = nil
        let body = ByteBuffer(string: #"{"detail":"The request could not be parsed as HTTP/1.1","status":400,"title":"Bad Request","type":"about:blank"}"#)
        let head = HTTPResponse(
            status: .badRequest,
            headerFields: [
                .contentType: "application/problem+json",
                .contentLength: String(body.readableBytes),
                .connection: "close",
                HTTPField.Name("X-Request-ID")!: RequestIDPolicy.accept(nil),
            ]
        )
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// At the front of the pipeline: counts the connection against the limit, and tells the edge
/// handler when bytes arrive.
final class RawBytesObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private weak var edge: EdgeHandler?
    private let limiter: ConnectionLimiter
    private var counted = false
    private var refused = false

    init(edge: EdgeHandler, limiter: ConnectionLimiter) {
        self.edge = edge
        self.limiter = limiter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context: context)
        context.fireChannelActive()
    }

    private func admit(context: ChannelHandlerContext) {
        guard !counted, !refused else { return }
        if limiter.admit() {
            counted = true
            return
        }
        refused = true
        EdgeMetrics.closed(.tooManyConnections).increment()
        let body = #"{"detail":"The server is at its connection limit; retry shortly","status":503,"title":"Service Unavailable","type":"about:blank"}"#
        let response = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: \(body.utf8.count)\r\nRetry-After: 1\r\nConnection: close\r\nX-Request-ID: \(RequestIDPolicy.accept(nil))\r\n\r\n\(body)"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            limiter.leave()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted {
            counted = false
            limiter.leave()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A refused connection's bytes go nowhere.
        guard !refused else { return }
        edge?.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// `http_connections_closed_total{reason}`: connections the edge closed, and why.
enum EdgeMetrics {
    enum Reason: String, CaseIterable {
        case readTimeout = "read_timeout"
        case unparsable
        case tooManyConnections = "too_many_connections"
    }

    private static let counters: [Reason: Counter] = Dictionary(
        uniqueKeysWithValues: Reason.allCases.map { ($0, Counter(label: MetricNames.connectionsClosed, dimensions: [("reason", $0.rawValue)])) }
    )

    static func closed(_ reason: Reason) -> Counter { counters[reason]! }

    /// Requests whose client went away before the body was complete: not the server's error.
    static let abandoned = Counter(label: MetricNames.requestsAbandoned)
}
