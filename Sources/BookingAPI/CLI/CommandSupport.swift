import Foundation
import Logging

/// What the command-line programs share: configuration from the environment, a logger on
/// stderr, and error lines that never carry secrets.
public enum CommandSupport {
    public static func databaseURL(_ reader: EnvironmentReader = .init()) throws -> DatabaseURL {
        try DatabaseURL(try reader.required("DATABASE_URL"))
    }

    public static func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = EnvironmentReader().values["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        return logger
    }

    /// One line an operator can act on, for any error: database failures by cause (never a
    /// query, a bound value or a password), the rest by their own description.
    public static func describe(_ error: any Error) -> String {
        if let translated = DatabaseError.translating(error) {
            return "database: \(translated.description)"
        }
        return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(type(of: error))"
    }

    /// One line on stderr, prefixed with the program name.
    public static func fail(_ program: String, _ message: String) {
        FileHandle.standardError.write(Data("\(program): \(message)\n".utf8))
    }

    /// Creates `path` with mode 0600, refusing to replace an existing file, before any secret
    /// is written to it.
    public static func createPrivateFile(_ path: String) throws -> FileHandle {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else {
            throw CommandError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        fchmod(descriptor, 0o600)
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }
}

public struct CommandError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
