import Foundation

/// `migration-runner status` output, as a table for people or JSON for pipelines.
public enum StatusFormatter {
    struct Row: Encodable {
        let version: String
        let name: String
        let state: String
        let checksum: String
        let applied_at: Date?
    }

    struct Document: Encodable {
        let current: String?
        let latest: String?
        let pending: [String]
        let drift: [String]
        let migrations: [Row]
    }

    static func rows(_ report: MigrationReport) -> [Row] {
        let applied = Dictionary(uniqueKeysWithValues: report.applied.map { ($0.version, $0) })
        let changed = Set(report.changed)
        var rows = report.shipped.map { file -> Row in
            guard let done = applied[file.version] else {
                return Row(version: file.version, name: file.name, state: "pending", checksum: file.checksum, applied_at: nil)
            }
            return Row(
                version: file.version, name: file.name, state: changed.contains(file.version) ? "changed" : "applied",
                checksum: done.checksum, applied_at: done.appliedAt
            )
        }
        for version in report.missing {
            if let done = applied[version] {
                rows.append(Row(version: version, name: done.name, state: "missing", checksum: done.checksum, applied_at: done.appliedAt))
            }
        }
        return rows.sorted { $0.version < $1.version }
    }

    public static func json(_ report: MigrationReport) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let document = Document(current: report.current, latest: report.latest, pending: report.pending, drift: report.drift, migrations: rows(report))
        return String(decoding: (try? encoder.encode(document)) ?? Data(), as: UTF8.self)
    }

    public static func table(_ report: MigrationReport) -> String {
        let formatter = ISO8601DateFormatter()
        var lines = ["VERSION  STATE    APPLIED AT            NAME"]
        for row in rows(report) {
            let applied = row.applied_at.map { formatter.string(from: $0) } ?? "-"
            lines.append(
                row.version.padding(toLength: 9, withPad: " ", startingAt: 0) + row.state.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + applied.padding(toLength: 22, withPad: " ", startingAt: 0) + row.name
            )
        }
        let summary =
            !report.drift.isEmpty ? "drift: \(report.drift.joined(separator: ", "))"
            : !report.pending.isEmpty ? "\(report.pending.count) pending" : "up to date"
        lines.append(summary)
        return lines.joined(separator: "\n")
    }
}
