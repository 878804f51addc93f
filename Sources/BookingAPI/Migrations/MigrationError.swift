import Foundation
/// Why a migration command could not do its work. Descriptions are for operators: they name the
/// file and carry PostgreSQL's message, never connection details.
public enum MigrationError: Error, CustomStringConvertible, Sendable {
    case invalidDirectory(path: String)
    case invalidFile(path: String, reason: String)
    case invalidName(String)
    case lockTimeout(seconds: Int)
    case drift([String])
    case failed(file: String, line: Int?, message: String)

    public var description: String {
        switch self {
        case .invalidDirectory(let path):
            return "migrations directory \(path) cannot be read"
        case .invalidFile(let path, let reason):
            return "\(path) \(reason)"
        case .invalidName(let name):
            return "'\(name)' cannot name a migration: use letters, digits and underscores"
        case .lockTimeout(let seconds):
            return "another migration-runner held the migration lock for \(seconds) s; giving up"
        case .drift(let versions):
            return "applied migrations differ from the files on disk: \(versions.joined(separator: ", ")); refusing to apply more"
        case .failed(let file, let line, let message):
            let location = line.map { "\(file):\($0)" } ?? file
            return "\(location): \(message) (nothing of this file was kept; later files were not tried)"
        }
    }
}
