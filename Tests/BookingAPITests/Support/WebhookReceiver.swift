import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

@testable import BookingAPI

/// One request a receiver got.
struct ReceivedWebhook: Sendable {
    let path: String
    let headers: [String: String]
    let body: [UInt8]
    let at: Date

    var id: String { headers["webhook-id"] ?? "" }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:] }
    var type: String { json["type"] as? String ?? "" }
}

/// What a receiver got, in arrival order.
final class ReceivedLog: Sendable {
    let items = Mutex<[ReceivedWebhook]>([])

    /// Appends; returns how many requests the same path got before.
    func append(_ item: ReceivedWebhook) -> Int {
        items.withLock { all in
            let earlier = all.filter { $0.path == item.path }.count
            all.append(item)
            return earlier
        }
    }
}

/// A real HTTP receiver on loopback (Hummingbird on a port of its own), answering each request
/// with what `answer` says for it (given the path and how many that path got before).
struct WebhookReceiver: Sendable {
    let port: Int
    let log: ReceivedLog
    let task: Task<Void, any Error>

    var all: [ReceivedWebhook] { log.items.withLock { $0 } }
    func url(_ path: String = "hook") -> String { "http://127.0.0.1:\(port)/\(path)" }

    static func start(
        answer: @escaping @Sendable (_ path: String, _ earlier: Int) async -> HTTPResponse.Status = { _, _ in .noContent }
    ) async throws -> WebhookReceiver {
        try await start(responding: { path, earlier in Response(status: await answer(path, earlier)) })
    }

    static func start(
        responding: @escaping @Sendable (_ path: String, _ earlier: Int) async -> Response
    ) async throws -> WebhookReceiver {
        let log = ReceivedLog()
        let router = Router()
        router.post("**") { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let item = ReceivedWebhook(path: String(request.uri.path.dropFirst()), headers: headers, body: Array(buffer: body), at: Date())
            let earlier = log.append(item)
            return await responding(item.path, earlier)
        }
        let port = Mutex<Int?>(nil)
        var logger = Logger(label: "webhook-receiver")
        logger.logLevel = .critical
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for _ in 0..<250 where port.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let bound = port.withLock({ $0 }) else {
            task.cancel()
            throw TestSetupError("the webhook receiver did not start")
        }
        return WebhookReceiver(port: bound, log: log, task: task)
    }

    /// Waits until `condition` holds for what arrived, up to `timeout` (a bound for a hung test,
    /// not a performance claim).
    @discardableResult
    func wait(timeout: Duration = .seconds(30), until condition: ([ReceivedWebhook]) -> Bool) async throws -> [ReceivedWebhook] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let now = all
            if condition(now) { return now }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSetupError("the receiver did not get what was expected; it got: \(all.map { "\($0.path) \($0.type) \($0.id)" })")
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

/// Checks messages with the `standardwebhooks` package (Tests/webhooks/verify.py): for each
/// message, whether each secret verifies it.
func verifyWebhooks(_ messages: [ReceivedWebhook], secrets: [String]) async throws -> [[Bool]] {
    let python = ProcessInfo.processInfo.environment["ICALENDAR_PYTHON"] ?? "python3"
    let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/webhooks/verify.py").path
    let request: [String: Any] = [
        "secrets": secrets,
        "messages": messages.map { ["headers": $0.headers, "body": Data($0.body).base64EncodedString()] },
    ]
    let input = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
    let result = try await runProgram(python.hasPrefix("/") ? python : "/usr/bin/env", python.hasPrefix("/") ? [script] : [python, script], input: input)
    guard result.status == 0 else {
        throw TestSetupError("the standardwebhooks check failed (scripts/test installs the package): \(result.output)")
    }
    let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
    guard let rows = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[Bool]] else {
        throw TestSetupError("unexpected verifier output: \(result.output)")
    }
    return rows
}
