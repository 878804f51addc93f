import Foundation
import Logging
import ServiceLifecycle

/// Deletes expired refresh tokens and ended sessions every `interval`, so neither table grows
/// without bound. A failure (PostgreSQL away) is logged and tried again next time.
struct SessionPruner: Service {
    let sessions: SessionStore
    let logger: Logger
    var interval: Duration = .seconds(600)

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await sessions.prune(logger: logger)
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("pruning sessions failed; will retry", metadata: ["error": .string(DatabaseError.translating(error)?.description ?? "\(type(of: error))")])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
