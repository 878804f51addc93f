import Logging

/// swift-log's `StreamLogHandler` lines on standard output, with the metadata formatted only when
/// a line is written. `StreamLogHandler` formats it on every change, and every request changes it
/// (`user_id`) while most requests log nothing: that was ~3 % of a request's CPU.
public struct TextLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var stream = StreamLogHandler.standardOutput(label: label)
        stream.logLevel = logLevel
        stream.metadata = metadata
        stream.log(event: event)
    }
}
