import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy on 127.0.0.1 that forwards to PostgreSQL and injects faults on demand.
///
/// Tests put it between the server under test and the database and switch its ``Mode``:
///
/// - `forward`: bytes pass both ways.
/// - `blackhole`: a partition. Existing and new connections stay open, nothing passes either way,
///   and a close on one side is not passed to the other while the partition lasts. Bytes sent
///   during the partition are lost. When the partition ends, connections that lost bytes (or saw
///   a side close) are closed, since their byte streams are broken; idle ones carry on.
/// - `refuse`: the listening socket is closed, so new connections get ECONNREFUSED; existing
///   connections are closed. Leaving this mode binds the same port again.
/// - `reset`: existing connections are reset (SO_LINGER 0, then close, so the peer gets a RST);
///   new ones are accepted and reset at once.
/// - `delay(d)`: every chunk is forwarded `d` after it arrived, in order, in both directions.
///
/// `setMode` and `shutdown` calls are applied one after another, in the order they were made.
/// The event loops are `MultiThreadedEventLoopGroup.singleton`'s; `shutdown` closes every socket.
final class FaultProxy: Sendable {
    enum Mode: Sendable, Equatable {
        case forward            // bytes pass both ways
        case blackhole          // existing and new connections stay open but nothing passes either way (a partition)
        case refuse             // the listening port refuses new connections (ECONNREFUSED); existing connections are closed
        case reset              // existing connections are reset (RST: SO_LINGER 0 then close); new ones are accepted and reset at once
        case delay(Duration)    // every chunk is forwarded after this delay, order kept, both directions
    }

    struct ProxyError: Error, CustomStringConvertible {
        let description: String
    }

    private struct State {
        var mode: Mode = .forward
        var port = 0
        var listener: (any Channel)?
        var connections: [Int: ProxyConnection] = [:]
        var nextConnectionID = 0
        var isShutDown = false
    }

    private let upstreamHost: String
    private let upstreamPort: Int
    private let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    private let state = Mutex(State())
    /// The last `setMode`/`shutdown` change; each change waits for the one before it.
    private let lastChange = Mutex<Task<Void, any Error>?>(nil)

    private init(upstreamHost: String, upstreamPort: Int) {
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
    }

    static func start(upstreamHost: String, upstreamPort: Int) async throws -> FaultProxy {
        let proxy = FaultProxy(upstreamHost: upstreamHost, upstreamPort: upstreamPort)
        let listener = try await proxy.bind(port: 0)
        guard let port = listener.localAddress?.port else {
            try? await listener.close()
            throw ProxyError(description: "the proxy's listening socket has no port")
        }
        proxy.state.withLock { state in
            state.port = port
            state.listener = listener
        }
        return proxy
    }

    /// The listening port (stays the same across refuse -> forward).
    var port: Int { state.withLock { $0.port } }

    /// Takes effect for existing and new connections before it returns.
    func setMode(_ mode: Mode) async throws {
        try await serially { try await self.apply(mode) }
    }

    /// Closes the listening socket and every connection. Later `setMode` calls throw.
    func shutdown() async throws {
        try await serially { await self.close() }
    }

    // MARK: Changes

    private func serially(_ change: @escaping @Sendable () async throws -> Void) async throws {
        let task = lastChange.withLock { last -> Task<Void, any Error> in
            let previous = last
            let task = Task {
                _ = await previous?.result
                try await change()
            }
            last = task
            return task
        }
        try await task.value
    }

    private func apply(_ mode: Mode) async throws {
        let (old, connections, closingListener) = try state.withLock { state throws -> (Mode, [ProxyConnection], (any Channel)?) in
            guard !state.isShutDown else { throw ProxyError(description: "the proxy has been shut down") }
            let old = state.mode
            state.mode = mode
            var closing: (any Channel)? = nil
            if mode == .refuse {
                closing = state.listener
                state.listener = nil
            }
            return (old, Array(state.connections.values), closing)
        }
        if let closingListener {
            try? await closingListener.close()
        }
        if old == .refuse && mode != .refuse {
            do {
                let listener = try await bind(port: port)
                state.withLock { $0.listener = listener }
            } catch {
                state.withLock { $0.mode = .refuse }
                throw error
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask {
                    try? await connection.eventLoop.flatSubmit {
                        connection.modeChanged(from: old, to: mode)
                    }.get()
                }
            }
        }
    }

    private func close() async {
        let (listener, connections) = state.withLock { state -> ((any Channel)?, [ProxyConnection]) in
            state.isShutDown = true
            let taken = (state.listener, Array(state.connections.values))
            state.listener = nil
            state.connections = [:]
            return taken
        }
        if let listener {
            try? await listener.close()
        }
        await withTaskGroup(of: Void.self) { group in
            for connection in connections {
                group.addTask {
                    try? await connection.eventLoop.flatSubmit {
                        connection.closeAll(reset: false)
                    }.get()
                }
            }
        }
    }

    // MARK: Listening

    private func bind(port: Int) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.close() }
                return self.accepted(channel)
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
    }

    private enum Admission {
        case close
        case reset
        case relay(ProxyConnection)
    }

    /// Runs on the accepted channel's event loop.
    private func accepted(_ channel: any Channel) -> EventLoopFuture<Void> {
        let admission = state.withLock { state -> Admission in
            if state.isShutDown { return .close }
            switch state.mode {
            case .refuse:
                // Accepted just before the listener closed.
                return .close
            case .reset:
                return .reset
            case .forward, .blackhole, .delay:
                let id = state.nextConnectionID
                state.nextConnectionID += 1
                let connection = ProxyConnection(
                    id: id,
                    client: channel,
                    mode: state.mode,
                    upstreamHost: upstreamHost,
                    upstreamPort: upstreamPort,
                    onFinished: { [weak self] id in self?.forget(id) }
                )
                state.connections[id] = connection
                return .relay(connection)
            }
        }
        return channel.eventLoop.makeCompletedFuture {
            switch admission {
            case .close:
                try channel.pipeline.syncOperations.addHandler(CloseOnActiveHandler(reset: false))
            case .reset:
                try channel.pipeline.syncOperations.addHandler(CloseOnActiveHandler(reset: true))
            case .relay(let connection):
                try channel.pipeline.syncOperations.addHandler(RelayHandler(connection: connection, side: .client))
                connection.start()
            }
        }
    }

    private func forget(_ id: Int) {
        state.withLock { _ = $0.connections.removeValue(forKey: id) }
    }
}

// MARK: - One proxied connection

/// A client connection and its upstream connection. All methods run on `eventLoop`.
private final class ProxyConnection: Sendable {
    enum Side: Sendable { case client, upstream }

    /// Bytes on their way in one direction, each with the time it may be written.
    struct Lane {
        var queue = CircularBuffer<(deadline: NIODeadline, bytes: ByteBuffer)>()
        var lastDeadline = NIODeadline.uptimeNanoseconds(0)
        var timerArmed = false
        /// The sending side closed: close the receiving side once the queue is written.
        var closeWhenDrained = false
    }

    struct LoopState {
        var mode: FaultProxy.Mode
        var upstream: (any Channel)?
        var connecting = false
        var clientOpen = true
        var upstreamOpen = false
        /// Toward upstream (index 0) and toward the client (index 1).
        var lanes = [Lane(), Lane()]
        /// Bytes were dropped by a partition: the streams are broken.
        var lostBytes = false
        /// A side closed during a partition and the close was held back.
        var closedDuringPartition = false
        /// Everything is being closed.
        var finished = false
        var forgotten = false
    }

    let id: Int
    let eventLoop: any EventLoop
    let client: any Channel
    private let upstreamHost: String
    private let upstreamPort: Int
    private let onFinished: @Sendable (Int) -> Void
    private let box: NIOLoopBoundBox<LoopState>

    /// Must be called on `client.eventLoop`.
    init(
        id: Int,
        client: any Channel,
        mode: FaultProxy.Mode,
        upstreamHost: String,
        upstreamPort: Int,
        onFinished: @escaping @Sendable (Int) -> Void
    ) {
        self.id = id
        self.eventLoop = client.eventLoop
        self.client = client
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        self.onFinished = onFinished
        self.box = NIOLoopBoundBox(LoopState(mode: mode), eventLoop: client.eventLoop)
    }

    private static func lane(from side: Side) -> Int { side == .client ? 0 : 1 }

    func start() {
        if box.value.mode != .blackhole {
            connectUpstream()
        }
    }

    private func connectUpstream() {
        box.value.connecting = true
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RelayHandler(connection: self, side: .upstream))
                }
            }
            .connect(host: upstreamHost, port: upstreamPort)
            .hop(to: eventLoop)
            .whenComplete { [self] result in
                self.upstreamConnected(result)
            }
    }

    private func upstreamConnected(_ result: Result<any Channel, any Error>) {
        box.value.connecting = false
        switch result {
        case .failure:
            // Upstream unreachable: the client sees its connection closed.
            if !box.value.finished {
                _ = closeAll(reset: false)
            }
            checkDone()
        case .success(let channel):
            guard !box.value.finished, box.value.clientOpen, channel.isActive else {
                channel.close(promise: nil)
                if !box.value.finished, box.value.clientOpen, box.value.mode != .blackhole {
                    client.close(promise: nil)
                }
                checkDone()
                return
            }
            box.value.upstream = channel
            box.value.upstreamOpen = true
            drain(lane: 0)
            drain(lane: 1)
        }
    }

    // MARK: Data

    func received(_ bytes: ByteBuffer, from side: Side) {
        guard !box.value.finished else { return }
        switch box.value.mode {
        case .forward:
            enqueue(bytes, lane: Self.lane(from: side), delay: .zero)
        case .delay(let duration):
            enqueue(bytes, lane: Self.lane(from: side), delay: TimeAmount(duration))
        case .blackhole:
            box.value.lostBytes = true
        case .refuse, .reset:
            break
        }
    }

    private func enqueue(_ bytes: ByteBuffer, lane index: Int, delay: TimeAmount) {
        var deadline = NIODeadline.now() + delay
        if deadline < box.value.lanes[index].lastDeadline {
            deadline = box.value.lanes[index].lastDeadline
        }
        box.value.lanes[index].lastDeadline = deadline
        box.value.lanes[index].queue.append((deadline, bytes))
        drain(lane: index)
    }

    private func target(of lane: Int) -> (any Channel)? {
        if lane == 0 {
            return box.value.upstreamOpen ? box.value.upstream : nil
        } else {
            return box.value.clientOpen ? client : nil
        }
    }

    /// Writes every chunk in the lane whose time has come, and arms a timer for the next one.
    private func drain(lane index: Int) {
        guard !box.value.finished, box.value.mode != .blackhole, let target = target(of: index) else { return }
        let now = NIODeadline.now()
        var wrote = false
        while let head = box.value.lanes[index].queue.first, head.deadline <= now {
            box.value.lanes[index].queue.removeFirst()
            target.write(head.bytes, promise: nil)
            wrote = true
        }
        if wrote {
            target.flush()
        }
        if let head = box.value.lanes[index].queue.first {
            if !box.value.lanes[index].timerArmed {
                box.value.lanes[index].timerArmed = true
                eventLoop.scheduleTask(deadline: head.deadline) { [self] in
                    self.box.value.lanes[index].timerArmed = false
                    self.drain(lane: index)
                }
            }
        } else if box.value.lanes[index].closeWhenDrained {
            target.close(promise: nil)
        }
    }

    // MARK: Closing

    func closed(_ side: Side) {
        switch side {
        case .client: box.value.clientOpen = false
        case .upstream: box.value.upstreamOpen = false
        }
        defer { checkDone() }
        guard !box.value.finished else { return }
        if box.value.mode == .blackhole {
            // A partition carries no FIN; the close is dealt with when it ends.
            box.value.closedDuringPartition = true
            return
        }
        propagateClose(from: side)
    }

    private func propagateClose(from side: Side) {
        let index = Self.lane(from: side)
        guard let target = target(of: index) else {
            // The other side is closed already, or upstream is still connecting
            // (then `upstreamConnected` sees the client closed).
            return
        }
        if box.value.lanes[index].queue.isEmpty {
            target.close(promise: nil)
        } else {
            // Write what is still delayed, then close.
            box.value.lanes[index].closeWhenDrained = true
        }
    }

    private func checkDone() {
        let value = box.value
        guard !value.forgotten, !value.clientOpen, !value.upstreamOpen, !value.connecting else { return }
        box.value.forgotten = true
        onFinished(id)
    }

    /// Closes both sides; with `reset`, each with SO_LINGER 0 so the peer gets a RST.
    func closeAll(reset: Bool) -> EventLoopFuture<Void> {
        box.value.finished = true
        for index in box.value.lanes.indices {
            box.value.lanes[index].queue.removeAll()
        }
        var channels: [any Channel] = [client]
        if let upstream = box.value.upstream { channels.append(upstream) }
        let closes = channels.map { channel -> EventLoopFuture<Void> in
            guard reset, let options = channel as? any SocketOptionProvider else {
                return channel.close()
            }
            return options.setSoLinger(linger(l_onoff: 1, l_linger: 0))
                .flatMapError { _ in channel.eventLoop.makeSucceededVoidFuture() }
                .flatMap { channel.close() }
        }
        return EventLoopFuture.andAllComplete(closes, on: eventLoop)
    }

    // MARK: Modes

    func modeChanged(from old: FaultProxy.Mode, to new: FaultProxy.Mode) -> EventLoopFuture<Void> {
        box.value.mode = new
        guard !box.value.finished else { return eventLoop.makeSucceededVoidFuture() }
        switch new {
        case .refuse:
            return closeAll(reset: false)
        case .reset:
            return closeAll(reset: true)
        case .blackhole:
            for index in box.value.lanes.indices where !box.value.lanes[index].queue.isEmpty {
                box.value.lanes[index].queue.removeAll()
                box.value.lostBytes = true
            }
            if box.value.lanes.contains(where: \.closeWhenDrained) {
                box.value.closedDuringPartition = true
            }
        case .forward, .delay:
            if old == .blackhole {
                let value = box.value
                let upstreamGone = value.upstream != nil && !value.upstreamOpen
                if value.lostBytes || value.closedDuringPartition || !value.clientOpen || upstreamGone {
                    return closeAll(reset: false)
                }
                if value.upstream == nil && !value.connecting {
                    connectUpstream()
                }
            }
            if new == .forward {
                // Whatever a delay still holds goes now, in order.
                let now = NIODeadline.now()
                for index in box.value.lanes.indices {
                    for position in box.value.lanes[index].queue.indices {
                        box.value.lanes[index].queue[position].deadline = now
                    }
                    box.value.lanes[index].lastDeadline = now
                }
            }
            drain(lane: 0)
            drain(lane: 1)
        }
        return eventLoop.makeSucceededVoidFuture()
    }
}

// MARK: - Handlers

private final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: ProxyConnection
    private let side: ProxyConnection.Side

    init(connection: ProxyConnection, side: ProxyConnection.Side) {
        self.connection = connection
        self.side = side
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), from: side)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.closed(side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// For connections accepted while refusing (just before the listener closed) or resetting.
private final class CloseOnActiveHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let reset: Bool

    init(reset: Bool) {
        self.reset = reset
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        if reset, let options = channel as? any SocketOptionProvider {
            options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
