import Foundation
import Logging
import Metrics
import Prometheus

/// The Prometheus registry `/metrics` exports, fed through swift-metrics.
public let metricsRegistry = PrometheusCollectorRegistry()

/// Bootstraps logging and metrics once per process: only `main` may call this.
public func bootstrapObservability(_ configuration: AppConfiguration) {
    let level = configuration.logLevel
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardOutput(label: label)
        handler.logLevel = level
        return handler
    }
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metricsRegistry))
}
