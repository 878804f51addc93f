import Foundation
/// A start-up configuration problem. Its description is one line that names the variable and
/// never repeats a secret value.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let variable: String
    public let reason: String

    public init(variable: String, reason: String) {
        self.variable = variable
        self.reason = reason
    }

    public static func missing(_ variable: String) -> Self {
        .init(variable: variable, reason: "is not set")
    }

    public var description: String { "configuration error: \(variable) \(reason)" }
}
