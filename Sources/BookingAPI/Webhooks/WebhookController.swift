import Foundation
import HTTPTypes
import Hummingbird

/// `/webhooks`: subscriptions, their deliveries, retries and pings. Admins only.
struct WebhookController {
    let store: WebhookStore
    let allowPrivateNetworks: Bool

    struct Created: ResponseEncodable {
        let subscription: WebhookSubscription
        let secret: String

        enum CodingKeys: String, CodingKey { case secret }

        func encode(to encoder: any Encoder) throws {
            try subscription.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(secret, forKey: .secret)
        }
    }

    struct Secret: ResponseEncodable {
        let secret: String
    }

    struct List: ResponseEncodable {
        let webhooks: [WebhookSubscription]
    }

    struct DeliveryPage: ResponseEncodable {
        let deliveries: [WebhookDelivery]
        let next_cursor: String?

        enum CodingKeys: String, CodingKey { case deliveries, next_cursor }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(deliveries, forKey: .deliveries)
            try container.encode(next_cursor, forKey: .next_cursor)
        }
    }

    /// What a subscription may ask for: every change event, or `*`. Pings go to the pinged
    /// subscription whatever it asked for.
    static let subscribable: Set<String> = Set(WebhookEventType.allCases.map(\.rawValue)).subtracting(["webhook.ping"])

    func register(adminRoutes: RouterGroup<AuthorizedContext<AdminOnly>>) {
        adminRoutes.post("webhooks") { request, context in try await self.create(request, context: context) }
        adminRoutes.get("webhooks") { _, context in List(webhooks: try await self.store.list(logger: context.logger)) }
        adminRoutes.get("webhooks/:id") { _, context in try await self.get(context: context) }
        adminRoutes.patch("webhooks/:id") { request, context in try await self.update(request, context: context) }
        adminRoutes.delete("webhooks/:id") { _, context in try await self.delete(context: context) }
        adminRoutes.post("webhooks/:id/secret") { _, context in try await self.rotate(context: context) }
        adminRoutes.get("webhooks/:id/deliveries") { request, context in try await self.deliveries(request, context: context) }
        adminRoutes.get("webhooks/:id/deliveries/:delivery_id") { _, context in try await self.delivery(context: context) }
        adminRoutes.post("webhooks/:id/deliveries/:delivery_id/retry") { _, context in try await self.retry(context: context) }
        adminRoutes.post("webhooks/:id/ping") { _, context in try await self.ping(context: context) }
    }

    static func id(_ parameters: Parameters, _ name: String = "id", what: String = "webhook") throws(ProblemError) -> Int64 {
        guard let text = parameters.get(name), text.first != "0", !text.isEmpty, text.utf8.count <= 19,
            text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(text), id > 0
        else {
            throw .notFound("No such \(what)")
        }
        return id
    }

    // MARK: Validation

    /// The URL's form, then where it resolves to now.
    func checkURL(_ reader: inout FieldReader) async -> String? {
        guard let text = reader.string("url", lengths: 1...WebhookTarget.maximumLength) else { return nil }
        switch WebhookTarget.parse(text, allowPrivateNetworks: allowPrivateNetworks) {
        case .failure(let error):
            reader.fail("url", error.message)
            return nil
        case .success(let target):
            if case .failure(let error) = await WebhookAddress.check(target, allowPrivateNetworks: allowPrivateNetworks) {
                reader.fail("url", error.message)
                return nil
            }
            return text
        }
    }

    static func events(_ reader: inout FieldReader) -> [String]? {
        guard let value = reader.object["events"], value != .null else {
            reader.fail("events", "is required")
            return nil
        }
        guard case .array(let items) = value, !items.isEmpty, items.count <= 16 else {
            reader.fail("events", "must be a list of 1–16 event types, or [\"*\"]")
            return nil
        }
        var events: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let name) = item, name == "*" || subscribable.contains(name) else {
                reader.fail("events.\(index)", "must be one of \(subscribable.sorted().joined(separator: ", ")), or *")
                return nil
            }
            if !events.contains(name) { events.append(name) }
        }
        if events.contains("*"), events.count > 1 {
            reader.fail("events", "\"*\" stands alone")
            return nil
        }
        return events
    }

    static func description(_ reader: inout FieldReader) -> String?? {
        guard let value = reader.object["description"] else { return .none }
        if value == .null { return .some(nil) }
        return .some(reader.string("description", lengths: 0...500, optional: true))
    }

    // MARK: Handlers

    func create(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> Response {
        var reader = FieldReader(try await request.jsonObject(context: context), allowed: ["url", "events", "description"])
        let events = Self.events(&reader)
        let description = Self.description(&reader) ?? nil
        let url = await checkURL(&reader)
        guard reader.errors.isEmpty, let url, let events else { throw ProblemError.invalid(reader.errors) }
        let (subscription, secret) = try await store.create(
            url: url, events: events, description: description, actor: UserController.actor(context), logger: context.logger
        )
        var response = try context.responseEncoder.encode(Created(subscription: subscription, secret: secret), from: request, context: context)
        response.status = .created
        response.headers[.location] = "/webhooks/\(subscription.id)"
        return UserController.noStore(response)
    }

    func get(context: AuthorizedContext<AdminOnly>) async throws -> WebhookSubscription {
        let id = try Self.id(context.parameters)
        guard let found = try await store.get(id: id, logger: context.logger) else { throw ProblemError.notFound("No such webhook") }
        return found
    }

    func update(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> WebhookSubscription {
        let id = try Self.id(context.parameters)
        let body = try await request.jsonObject(context: context, mergePatch: true)
        var reader = FieldReader(body, allowed: ["url", "events", "description", "disabled"])
        var change = WebhookStore.Change()
        if body["url"] != nil {
            change.url = await checkURL(&reader)
        }
        if body["events"] != nil { change.events = Self.events(&reader) }
        change.description = Self.description(&reader)
        if let value = body["disabled"] {
            if case .bool(let flag) = value { change.disabled = flag } else { reader.fail("disabled", "must be true or false") }
        }
        guard reader.errors.isEmpty else { throw ProblemError.invalid(reader.errors) }
        guard let updated = try await store.update(id: id, change: change, actor: UserController.actor(context), logger: context.logger) else {
            throw ProblemError.notFound("No such webhook")
        }
        return updated
    }

    func delete(context: AuthorizedContext<AdminOnly>) async throws -> Response {
        let id = try Self.id(context.parameters)
        guard try await store.delete(id: id, actor: UserController.actor(context), logger: context.logger) else {
            throw ProblemError.notFound("No such webhook")
        }
        return Response(status: .noContent)
    }

    func rotate(context: AuthorizedContext<AdminOnly>) async throws -> EditedResponse<Secret> {
        let id = try Self.id(context.parameters)
        guard let secret = try await store.rotate(id: id, actor: UserController.actor(context), logger: context.logger) else {
            throw ProblemError.notFound("No such webhook")
        }
        return EditedResponse(headers: [.cacheControl: "no-store"], response: Secret(secret: secret))
    }

    func deliveries(_ request: Request, context: AuthorizedContext<AdminOnly>) async throws -> DeliveryPage {
        let id = try Self.id(context.parameters)
        var limit = 50
        var before: Int64?
        var state: String?
        for (key, value) in request.uri.queryParameters {
            let text = String(value)
            switch key {
            case "limit":
                guard let parsed = Int(text), (1...200).contains(parsed) else { throw ProblemError.badRequest("limit must be from 1 to 200") }
                limit = parsed
            case "cursor":
                guard let data = Data(base64URL: text), let parsed = Int64(String(decoding: data, as: UTF8.self)), parsed > 0 else {
                    throw ProblemError.badRequest("cursor is not one this server gave out")
                }
                before = parsed
            case "state":
                guard ["pending", "delivered", "failed"].contains(text) else { throw ProblemError.badRequest("state must be pending, delivered or failed") }
                state = text
            default:
                throw ProblemError.badRequest("unknown query parameter '\(key)'")
            }
        }
        do {
            let (found, next) = try await store.deliveries(subscription: id, state: state, limit: limit, before: before, logger: context.logger)
            return DeliveryPage(deliveries: found, next_cursor: next.map { Data(String($0).utf8).base64URLEncoded() })
        } catch WebhookStoreError.notFound {
            throw ProblemError.notFound("No such webhook")
        }
    }

    func delivery(context: AuthorizedContext<AdminOnly>) async throws -> WebhookDelivery {
        let id = try Self.id(context.parameters)
        let delivery = try Self.id(context.parameters, "delivery_id", what: "delivery")
        guard let found = try await store.delivery(subscription: id, id: delivery, logger: context.logger) else {
            throw ProblemError.notFound("No such delivery")
        }
        return found
    }

    func retry(context: AuthorizedContext<AdminOnly>) async throws -> EditedResponse<WebhookDelivery> {
        let id = try Self.id(context.parameters)
        let delivery = try Self.id(context.parameters, "delivery_id", what: "delivery")
        guard let found = try await store.retry(subscription: id, id: delivery, logger: context.logger) else {
            throw ProblemError.notFound("No such delivery")
        }
        return EditedResponse(status: .accepted, response: found)
    }

    func ping(context: AuthorizedContext<AdminOnly>) async throws -> EditedResponse<WebhookDelivery> {
        let id = try Self.id(context.parameters)
        do {
            return EditedResponse(status: .accepted, response: try await store.ping(subscription: id, logger: context.logger))
        } catch WebhookStoreError.notFound {
            throw ProblemError.notFound("No such webhook")
        } catch WebhookStoreError.disabled {
            throw ProblemError.conflict("The webhook is disabled; enable it first")
        }
    }
}

extension WebhookSubscription: ResponseEncodable {}
extension WebhookDelivery: ResponseEncodable {}
