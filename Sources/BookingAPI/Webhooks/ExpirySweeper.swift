import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Reports `booking.expired` once per booking: every `interval` it takes pending bookings whose
/// event has started and that were not reported yet, and in one transaction marks them reported
/// and writes the audit row and the outbox event. Several replicas share the work: rows another
/// one holds are skipped (`SKIP LOCKED`), and an accept that holds a row just before its event
/// starts is skipped too (if it commits, the booking is no longer pending). Reads never wait for
/// this: expiry is computed from the clock wherever a booking is read.
struct ExpirySweeper: Service {
    let database: Database
    let logger: Logger
    var interval: Duration = .seconds(5)
    /// Bookings reported per transaction; a backlog is worked through batch by batch.
    static let batch = 100
    static let actor = AuditActor(name: "system", userID: nil, requestID: nil)

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    while try await sweep() == Self.batch, !Task.isCancelled {}
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("reporting expired bookings failed; will retry", metadata: ["error": .string(DatabaseError.translating(error)?.description ?? "\(type(of: error))")])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One batch; returns how many bookings it reported.
    @discardableResult
    func sweep() async throws -> Int {
        try await database.transaction(logger: logger) { connection in
            let rows = try await connection.collect(
                """
                UPDATE bookings SET expiry_reported = true
                WHERE id IN (
                    SELECT id FROM bookings
                    WHERE status = 'pending' AND NOT expiry_reported AND event_time <= now()
                    ORDER BY event_time
                    LIMIT \(Self.batch)
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING \(unescaped: PostgresBookingStore.columns)
                """,
                logger: logger
            )
            var reported = 0
            for try await row in rows {
                let booking = try PostgresBookingStore.decode(row).booking
                try await Audit.record("booking.expired", target: .booking, id: booking.id, actor: Self.actor, on: connection, logger: logger)
                try await Outbox.record(.bookingExpired, booking: booking, on: connection, logger: logger)
                reported += 1
            }
            return reported
        }
    }
}
