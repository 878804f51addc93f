import Foundation
import HTTPTypes
import Hummingbird

/// `/calendar-feeds` (admin: create, list, revoke), the feeds themselves (public: the secret in
/// the URL is the credential, as calendar programs send no bearer token) and `/availability`.
struct CalendarController {
    let feeds: CalendarFeedStore
    let bookings: any BookingStore

    struct FeedList: ResponseEncodable {
        let feeds: [CalendarFeed]
    }

    struct CreatedFeed: ResponseEncodable {
        let id: Int64
        let name: String
        let url: String
        let created_by: String
        let created_at: Date
    }

    struct Availability: ResponseGenerator {
        let busy: [BusyRange]

        func response(from request: Request, context: some RequestContext) throws -> Response {
            var out: [UInt8] = Array(#"{"busy":["#.utf8)
            for (index, range) in busy.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(contentsOf: #"{"end":"#.utf8)
                CalendarController.instant(range.end, into: &out)
                out.append(contentsOf: #","start":"#.utf8)
                CalendarController.instant(range.start, into: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(contentsOf: "]}".utf8)
            return BookingJSON.response(ByteBuffer(bytes: out))
        }
    }

    func register(
        publicRoutes: RouterGroup<AppRequestContext>,
        userRoutes: RouterGroup<AuthorizedContext<AnyAuthenticatedUser>>,
        adminRoutes: RouterGroup<AuthorizedContext<AdminOnly>>
    ) {
        userRoutes.get("availability") { request, context in try await self.availability(request, context: context) }
        adminRoutes.post("calendar-feeds") { request, context in try await self.create(request, context: context) }
        adminRoutes.get("calendar-feeds") { _, context in FeedList(feeds: try await self.feeds.list(logger: context.logger)) }
        adminRoutes.delete("calendar-feeds/:id") { _, context in try await self.revoke(context: context) }
        // Public by design: the 256-bit secret in the path is the credential.
        publicRoutes.get("calendar-feeds/{secret}.ics") { request, context in try await self.feed(request, context: context) }
    }

    static let maximumWindow: TimeInterval = 92 * 86_400

    func availability(_ request: Request, context: AuthorizedContext<AnyAuthenticatedUser>) async throws -> Availability {
        var from: Date?, to: Date?
        for (key, value) in request.uri.queryParameters {
            guard key == "from" || key == "to" else { throw ProblemError.badRequest("unknown query parameter '\(key)'") }
            guard let date = RFC3339.parse(String(value)) else {
                throw ProblemError.badRequest("\(key) must be an RFC 3339 date-time with offset")
            }
            if key == "from" { from = date } else { to = date }
        }
        guard let from, let to else { throw ProblemError.badRequest("from and to are both required") }
        guard from < to else { throw ProblemError.badRequest("from must be before to") }
        guard to.timeIntervalSince(from) <= Self.maximumWindow else {
            throw ProblemError.badRequest("from and to may be at most 92 days apart")
        }
        return Availability(busy: try await bookings.availability(from: from, to: to, logger: context.logger))
    }

    func create(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> EditedResponse<CreatedFeed> {
        var reader = FieldReader(try await request.jsonObject(context: context), allowed: ["name"])
        let name = reader.string("name", lengths: 1...100)
        guard reader.errors.isEmpty, let name else { throw ProblemError.invalid(reader.errors) }
        let (feed, secret) = try await feeds.create(name: name, by: context.user.actor(requestID: context.requestID), logger: context.logger)
        return EditedResponse(
            status: .created,
            // The URL is the credential: shown once, kept by no cache.
            headers: [.cacheControl: "no-store"],
            response: CreatedFeed(id: feed.id, name: feed.name, url: "/calendar-feeds/\(secret).ics", created_by: feed.created_by, created_at: feed.created_at)
        )
    }

    func revoke(context: AuthorizedContext<AdminOnly>) async throws -> Response {
        let id = try UserController.id(context.parameters)
        guard try await feeds.revoke(id: id, by: context.user.actor(requestID: context.requestID), logger: context.logger) else {
            throw ProblemError.notFound("No calendar feed \(id)")
        }
        return Response(status: .noContent)
    }

    func feed(_ request: Request, context: AppRequestContext) async throws -> Response {
        // Only well-formed secrets reach the database.
        guard let secret = context.parameters.get("secret"), secret.utf8.count == 43,
            secret.utf8.allSatisfy({ $0.isBase64URL }),
            let found = try await feeds.bookings(secret: secret, logger: context.logger)
        else {
            throw ProblemError.notFound("No such calendar feed")
        }
        var calendar = ICalendar(name: found.name)
        for booking in found.bookings { calendar.add(booking) }
        return calendar.response(for: request)
    }

    /// A JSON date-time in UTC: whole seconds as bookings show them, else with microseconds
    /// (a window's edge may carry a fraction).
    static func instant(_ date: Date, into out: inout [UInt8]) {
        let micros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let seconds = Date(timeIntervalSince1970: TimeInterval(micros.floorDivided(by: 1_000_000)))
        let fraction = micros - micros.floorDivided(by: 1_000_000) * 1_000_000
        var whole: [UInt8] = []
        BookingJSON.date(seconds, into: &whole)
        guard fraction != 0 else {
            out.append(contentsOf: whole)
            return
        }
        out.append(contentsOf: whole.dropLast(2))  // `Z"`
        out.append(contentsOf: ".".utf8)
        out.append(contentsOf: String(format: "%06lld", fraction).utf8)
        out.append(contentsOf: "Z\"".utf8)
    }
}

extension Int64 {
    fileprivate func floorDivided(by divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

extension UInt8 {
    fileprivate var isBase64URL: Bool {
        (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) || (0x30...0x39).contains(self) || self == 0x2D || self == 0x5F
    }
}
