import Crypto
import Foundation

/// One versioned SQL file from `Migrations/`, named `NNNN_description.sql`.
public struct MigrationFile: Sendable, Equatable {
    public let version: String
    public let name: String
    public let path: String
    public let sql: String
    /// Hex SHA-256 of the file's bytes.
    public let checksum: String
    /// The file starts with `-- migrate:no-transaction` (e.g. `CREATE INDEX CONCURRENTLY`).
    public let runsOutsideTransaction: Bool

    public static let noTransactionMarker = "-- migrate:no-transaction"

    init(version: String, name: String, path: String, data: Data) throws(MigrationError) {
        guard let sql = String(data: data, encoding: .utf8) else {
            throw .invalidFile(path: path, reason: "is not UTF-8 text")
        }
        self.version = version
        self.name = name
        self.path = path
        self.sql = sql
        self.checksum = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        let firstLine = sql.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        self.runsOutsideTransaction = firstLine.trimmingCharacters(in: .whitespaces) == Self.noTransactionMarker
    }
}

/// The shipped migrations: every `NNNN_name.sql` in a directory, in version order.
public struct MigrationDirectory: Sendable {
    public let path: String
    public let files: [MigrationFile]

    public static func load(_ path: String) throws(MigrationError) -> MigrationDirectory {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw .invalidDirectory(path: path)
        }
        var files: [MigrationFile] = []
        for fileName in names.sorted() where fileName.hasSuffix(".sql") {
            guard let (version, name) = parse(fileName) else {
                throw .invalidFile(path: "\(path)/\(fileName)", reason: "is not named NNNN_description.sql")
            }
            let filePath = "\(path)/\(fileName)"
            guard let data = FileManager.default.contents(atPath: filePath) else {
                throw .invalidFile(path: filePath, reason: "cannot be read")
            }
            if let clash = files.first(where: { $0.version == version }) {
                throw .invalidFile(path: filePath, reason: "repeats version \(version) of \(clash.path)")
            }
            files.append(try MigrationFile(version: version, name: name, path: filePath, data: data))
        }
        return MigrationDirectory(path: path, files: files)
    }

    /// `0007_add_index.sql` → ("0007", "add_index").
    static func parse(_ fileName: String) -> (String, String)? {
        let stem = fileName.dropLast(4)
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 4, parts[0].allSatisfy(\.isASCII), parts[0].allSatisfy(\.isNumber),
            !parts[1].isEmpty,
            parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    /// Creates the next-numbered empty file and returns its path.
    public func createNext(named rawName: String) throws(MigrationError) -> String {
        let name = rawName.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
        let slug = String(name).trimmingCharacters(in: CharacterSet(charactersIn: "_"))
        guard !slug.isEmpty, slug.allSatisfy(\.isASCII) else {
            throw .invalidName(rawName)
        }
        let next = (files.compactMap { Int($0.version) }.max() ?? 0) + 1
        guard next <= 9999 else { throw .invalidName(rawName) }
        let filePath = "\(path)/\(String(format: "%04d", next))_\(slug).sql"
        let header = "-- \(rawName)\n"
        guard FileManager.default.createFile(atPath: filePath, contents: Data(header.utf8)) else {
            throw .invalidDirectory(path: path)
        }
        return filePath
    }
}
