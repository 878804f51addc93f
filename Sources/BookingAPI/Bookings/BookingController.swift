import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// `/booking` routes. Submit, list and get are for any signed-in user (a requester sees only
/// their own bookings); deciding, deleting and history are for admins.
struct BookingController {
    let store: any BookingStore

    struct Page: ResponseGenerator {
        let bookings: [Booking]
        let next_cursor: String?

        func response(from request: Request, context: some RequestContext) throws -> Response {
            BookingJSON.response(BookingJSON.page(bookings, nextCursor: next_cursor))
        }
    }

    struct History: ResponseEncodable {
        let booking_id: Int64
        let history: [BookingEvent]
    }

    func register(
        userRoutes: RouterGroup<AuthorizedContext<AnyAuthenticatedUser>>,
        adminRoutes: RouterGroup<AuthorizedContext<AdminOnly>>
    ) {
        userRoutes.post { request, context in try await self.submit(request, context: context) }
        userRoutes.get { request, context in try await self.list(request, context: context) }
        userRoutes.get(":id") { _, context in try await self.get(context: context) }
        userRoutes.post(":id/cancel") { request, context in try await self.cancel(request, context: context) }
        userRoutes.get(":id/calendar.ics") { request, context in try await self.calendar(request, context: context) }
        adminRoutes.post("accept") { request, context in try await self.decide(.accept, request, context: context) }
        adminRoutes.post("reject") { request, context in try await self.decide(.reject, request, context: context) }
        adminRoutes.delete(":id") { _, context in try await self.delete(context: context) }
        adminRoutes.get(":id/history") { _, context in try await self.history(context: context) }
    }

    func submit(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> EditedResponse<Booking> {
        let body = try await request.jsonObject(context: context)
        var idempotency: (key: String, requestHash: String)?
        if let key = request.headers[.idempotencyKey] {
            guard (1...255).contains(key.utf8.count) else {
                throw ProblemError.badRequest("Idempotency-Key must be 1–255 characters")
            }
            idempotency = (key, Self.hash(body))
        }
        let submission = try BookingValidation.submission(body)
        do {
            let result = try await store.submit(submission, by: context.user.actor(requestID: context.requestID), idempotency: idempotency, logger: context.logger)
            let id = result.booking.id
            return EditedResponse(
                status: result.replayed ? .ok : .created,
                headers: [.location: "/booking/\(id)"],
                response: result.booking
            )
        } catch let error as BookingStoreError {
            throw Self.problem(error)
        }
    }

    func list(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Page {
        var filter = try Self.filter(request.uri.queryParameters)
        if context.user.role != .admin { filter.submitterID = context.user.id }
        let (bookings, next) = try await store.list(filter, logger: context.logger)
        return Page(bookings: bookings, next_cursor: next?.token)
    }

    func get(context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Booking {
        let id = try Self.id(context.parameters)
        // A requester asking for someone else's booking learns nothing: the same 404.
        guard let found = try await store.get(id: id, logger: context.logger),
            context.user.role == .admin || found.submitterID == context.user.id
        else {
            throw ProblemError.notFound("No booking \(id)")
        }
        return found.booking
    }

    func cancel(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Booking {
        let id = try Self.id(context.parameters)
        let note = try BookingValidation.cancellation(try await request.optionalJSONObject(context: context))
        do {
            return try await store.cancel(
                id: id, note: note, by: context.user.actor(requestID: context.requestID),
                onlySubmitter: context.user.role == .admin ? nil : context.user.id, logger: context.logger
            )
        } catch let error as BookingStoreError {
            throw Self.problem(error, id: id)
        }
    }

    /// The booking as an iCalendar file, for whoever may read the booking.
    func calendar(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Response {
        let booking = try await get(context: context)
        var calendar = ICalendar()
        calendar.add(booking)
        return calendar.response(
            for: request, extraHeaders: [.contentDisposition: #"attachment; filename="booking-\#(booking.id).ics""#]
        )
    }

    func decide(_ decision: Decision, _ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> Booking {
        let (id, note) = try BookingValidation.decision(try await request.jsonObject(context: context))
        do {
            return try await store.decide(id: id, decision, note: note, by: context.user.actor(requestID: context.requestID), logger: context.logger)
        } catch let error as BookingStoreError {
            throw Self.problem(error, id: id)
        }
    }

    func delete(context: AuthorizedContext<AdminOnly>) async throws -> Booking {
        let id = try Self.id(context.parameters)
        do {
            return try await store.delete(id: id, by: context.user.actor(requestID: context.requestID), logger: context.logger)
        } catch let error as BookingStoreError {
            throw Self.problem(error, id: id)
        }
    }

    func history(context: AuthorizedContext<AdminOnly>) async throws -> History {
        let id = try Self.id(context.parameters)
        let events = try await store.history(id: id, logger: context.logger)
        guard !events.isEmpty else { throw ProblemError.notFound("No booking \(id)") }
        return History(booking_id: id, history: events)
    }

    // MARK: - Helpers

    static func id(_ parameters: Parameters) throws(ProblemError) -> Int64 {
        // Canonical decimal only: `+1`, `01` and ` 1` name no booking.
        guard let text = parameters.get("id"), text.first != "0", text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let id = Int64(text), id > 0
        else {
            throw .notFound("No such booking")
        }
        return id
    }

    static let listParameters: Set<String> = ["status", "from", "to", "limit", "cursor", "order"]

    static func filter(_ query: some Sequence<(key: Substring, value: Substring)>) throws(ProblemError) -> BookingFilter {
        var filter = BookingFilter()
        for (key, value) in query {
            let text = String(value)
            switch key {
            case "status":
                guard let status = BookingStatus(rawValue: text) else {
                    throw .badRequest("status must be pending, accepted, rejected, cancelled or expired")
                }
                filter.status = status
            case "from", "to":
                guard let date = RFC3339.parse(text) else { throw .badRequest("\(key) must be an RFC 3339 date-time with offset") }
                if key == "from" { filter.from = date } else { filter.to = date }
            case "limit":
                guard let limit = Int(text), (1...200).contains(limit) else { throw .badRequest("limit must be from 1 to 200") }
                filter.limit = limit
            case "cursor":
                guard let cursor = BookingCursor(token: text) else { throw .badRequest("cursor is not one this server gave out") }
                filter.after = cursor
            case "order":
                guard let order = BookingOrder(rawValue: text) else { throw .badRequest("order must be created_at or event_time") }
                filter.order = order
            default:
                throw .badRequest("unknown query parameter '\(key)'")
            }
        }
        // A cursor continues the list it came from; from another order it would skip or repeat.
        if let cursor = filter.after, cursor.order != filter.order {
            throw .badRequest("cursor belongs to a list in another order")
        }
        return filter
    }

    /// The body's canonical form (sorted keys), so a retry with other spacing still matches.
    static func hash(_ body: [String: JSONValue]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(JSONValue.object(body))) ?? Data()
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    static func problem(_ error: BookingStoreError, id: Int64? = nil) -> ProblemError {
        switch error {
        case .notFound:
            return .notFound("No booking \(id.map(String.init) ?? "")")
        case .notPending(let status):
            return .conflict("Booking \(id.map(String.init) ?? "") is \(status.rawValue), not pending", extensions: ["current_status": .string(status.rawValue)])
        case .notCancellable(.accepted):
            return .conflict("Booking \(id.map(String.init) ?? "")'s event has started; it can no longer be cancelled", extensions: ["current_status": .string("accepted")])
        case .notCancellable(let status):
            return .conflict("Booking \(id.map(String.init) ?? "") is \(status.rawValue) and cannot be cancelled", extensions: ["current_status": .string(status.rawValue)])
        case .overlaps(let other):
            return .conflict("Booking overlaps accepted booking \(other)", extensions: ["conflicting_id": .number(Double(other))])
        case .idempotencyKeyReused:
            return .conflict("This Idempotency-Key was used with a different body")
        case .idempotentBookingDeleted(let other):
            return .conflict("The booking this Idempotency-Key created (\(other)) has been deleted")
        }
    }
}

extension AuthenticatedUser {
    func actor(requestID: String) -> Actor { Actor(id: id, username: username, requestID: requestID) }
}
