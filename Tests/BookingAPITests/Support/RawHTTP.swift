import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP connection to the server under test, for what an HTTP client library will not
/// send: half a head, a short body, a thousand headers, bytes that are not UTF-8.
///
/// The socket is non-blocking and every wait is a short `Task.sleep` between polls, so no test
/// thread ever blocks (the cooperative pool is small) and every read ends at its deadline.
final class RawConnection: @unchecked Sendable {
    private var fd: Int32
    /// Bytes received and not yet consumed by `readResponse`.
    private(set) var received: [UInt8] = []
    /// Set once the peer closed (EOF or reset).
    private(set) var peerClosed = false

    private init(fd: Int32) { self.fd = fd }

    deinit { close() }

    /// Connects to 127.0.0.1:`port`.
    static func open(port: Int, timeout: Duration = .seconds(5)) async throws -> RawConnection {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawHTTPError("socket: \(String(cString: strerror(errno)))") }
        let connection = RawConnection(fd: fd)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 && errno != EINPROGRESS {
            throw RawHTTPError("connect: \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + timeout
        while !connection.poll(Int16(POLLOUT)) {
            guard ContinuousClock.now < deadline else { throw RawHTTPError("connect: timed out") }
            try await Task.sleep(for: .milliseconds(5))
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else { throw RawHTTPError("connect: \(String(cString: strerror(error)))") }
        return connection
    }

    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    private func poll(_ events: Int16) -> Bool {
        guard fd >= 0 else { return false }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        return Glibc.poll(&entry, 1, 0) > 0 && entry.revents != 0
    }

    /// Sends every byte; throws `RawHTTPError.closed` when the peer closed or reset first.
    func send(_ bytes: [UInt8], timeout: Duration = .seconds(5)) async throws {
        var offset = 0
        let deadline = ContinuousClock.now + timeout
        while offset < bytes.count {
            guard fd >= 0 else { throw RawHTTPError.closed }
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
                continue
            }
            if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                guard ContinuousClock.now < deadline else { throw RawHTTPError("send: timed out") }
                try await Task.sleep(for: .milliseconds(2))
                continue
            }
            throw RawHTTPError.closed
        }
    }

    func send(_ text: String, timeout: Duration = .seconds(5)) async throws {
        try await send(Array(text.utf8), timeout: timeout)
    }

    /// Reads what is there now; true when anything happened (bytes or the peer closing).
    @discardableResult
    private func drain() -> Bool {
        guard fd >= 0, !peerClosed else { return false }
        var progressed = false
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received.append(contentsOf: chunk[0..<count])
                progressed = true
                continue
            }
            if count == 0 {
                peerClosed = true
                return true
            }
            if errno == EAGAIN || errno == EWOULDBLOCK { return progressed }
            if errno == EINTR { continue }
            // ECONNRESET and the like: the server is gone all the same.
            peerClosed = true
            return true
        }
    }

    /// Waits up to `timeout` for the server to close the connection (reading, and keeping, what
    /// it sends meanwhile). True when it closed.
    func waitForClose(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            drain()
            if peerClosed { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Reads one response (head, and a body of `Content-Length` bytes unless `head` is true).
    /// Throws when the connection closes first or `timeout` passes.
    func readResponse(head: Bool = false, timeout: Duration = .seconds(10)) async throws -> RawResponse {
        let deadline = ContinuousClock.now + timeout
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            drain()
            if let end = Self.find(separator, in: received) {
                let headText = String(decoding: received[0..<end], as: UTF8.self)
                var lines = headText.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst()
                let parts = statusLine.split(separator: " ", maxSplits: 2)
                guard parts.count >= 2, let status = Int(parts[1]) else { throw RawHTTPError("bad status line: \(statusLine)") }
                var headers: [(String, String)] = []
                for line in lines {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
                }
                let response = RawResponse(status: status, headers: headers, body: [])
                let length = head ? 0 : Int(response.header("Content-Length") ?? "0") ?? 0
                let bodyStart = end + separator.count
                while received.count < bodyStart + length {
                    guard !peerClosed else { throw RawHTTPError("closed inside the body of \(statusLine)") }
                    guard ContinuousClock.now < deadline else { throw RawHTTPError("timed out inside the body of \(statusLine)") }
                    try await Task.sleep(for: .milliseconds(5))
                    drain()
                }
                let body = Array(received[bodyStart..<bodyStart + length])
                received.removeFirst(bodyStart + length)
                return RawResponse(status: status, headers: headers, body: body)
            }
            if peerClosed { throw RawHTTPError("closed before a whole response head (\(received.count) bytes)") }
            guard ContinuousClock.now < deadline else { throw RawHTTPError("timed out waiting for a response") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<start + needle.count]) == needle { return start }
        }
        return nil
    }
}

struct RawResponse: Sendable {
    let status: Int
    let headers: [(String, String)]
    let body: [UInt8]

    /// The first value of `name`, compared case-insensitively.
    func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
    }
}

struct RawHTTPError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
    static let closed = RawHTTPError("the server closed the connection")
}
