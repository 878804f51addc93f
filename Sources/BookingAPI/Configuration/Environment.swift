import Foundation

/// Reads variables from a process environment, with the `NAME_FILE` convention for secrets:
/// when `NAME_FILE` is set, the value is the content of that file (trailing newline trimmed).
public struct EnvironmentReader: Sendable {
    public let values: [String: String]

    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    /// The value of `name`, or of the file named by `name_FILE`; nil when neither is set.
    public func value(_ name: String) throws(ConfigurationError) -> String? {
        let direct = values[name].flatMap { $0.isEmpty ? nil : $0 }
        let filePath = values["\(name)_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if direct != nil, filePath != nil {
            throw ConfigurationError(variable: name, reason: "and \(name)_FILE are both set; use one")
        }
        if let direct { return direct }
        guard let filePath else { return nil }
        guard let data = FileManager.default.contents(atPath: filePath),
            let text = String(data: data, encoding: .utf8)
        else {
            throw ConfigurationError(variable: "\(name)_FILE", reason: "names a file that cannot be read: \(filePath)")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            throw ConfigurationError(variable: "\(name)_FILE", reason: "names an empty file: \(filePath)")
        }
        return trimmed
    }

    public func required(_ name: String) throws(ConfigurationError) -> String {
        guard let value = try value(name) else { throw .missing(name) }
        return value
    }

    public func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let text = try value(name) else { return defaultValue }
        guard let number = Int(text), range.contains(number) else {
            throw ConfigurationError(variable: name, reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }
}
