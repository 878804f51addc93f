import Foundation
import Logging
import Metrics
import Prometheus

/// The Prometheus registry `/metrics` exports, fed through swift-metrics.
public let metricsRegistry = PrometheusCollectorRegistry()

/// Bootstraps logging and metrics once per process: only `main` (or a test harness) may call this.
public func bootstrapObservability(_ configuration: AppConfiguration) {
    let level = configuration.logLevel
    let format = configuration.logFormat
    LoggingSystem.bootstrap { label in
        var handler: any LogHandler =
            format == .json ? JSONLogHandler(label: label) : TextLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
    bootstrapMetrics()
}

/// swift-metrics into `metricsRegistry`. Once per process.
public func bootstrapMetrics() {
    var factory = PrometheusMetricsFactory(registry: metricsRegistry)
    factory.defaultDurationHistogramBuckets = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
    ]
    MetricsSystem.bootstrap(factory)
}

/// Metric names, in one place so the README and the tests agree with the code.
public enum MetricNames {
    public static let requests = "http_requests_total"
    public static let requestDuration = "http_request_duration_seconds"
    public static let logins = "login_attempts_total"
    public static let hashQueueDepth = "password_hash_queue_depth"
    public static let hashWait = "password_hash_wait_seconds"
    public static let databaseConnectionsInUse = "db_pool_connections_in_use"
    public static let schemaCurrent = "schema_migrations_current"
    public static let databaseFailures = "db_failures_total"
    public static let tokenRefreshes = "token_refreshes_total"
    public static let sessionRevocations = "session_revocations_total"
    public static let connectionsClosed = "http_connections_closed_total"
    public static let requestsAbandoned = "http_requests_abandoned_total"
    public static let databasePoolReplacements = "db_pool_replacements_total"
    public static let webhookDeliveries = "webhook_deliveries_total"
    public static let webhookBacklog = "webhook_outbox_backlog"
    public static let webhookOldest = "webhook_outbox_oldest_seconds"
    public static let webhookLatency = "webhook_delivery_latency_seconds"
    public static let userCacheLookups = "user_cache_lookups_total"
}
