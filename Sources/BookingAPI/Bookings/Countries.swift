import Foundation

/// ISO 3166-1 countries, from `Resources/countries.tsv` shipped in the package (no network).
/// Looks up a name, alpha-2 or alpha-3 code, case-insensitively, and answers the alpha-2 code.
public struct Countries: Sendable {
    private let codes: [String: String]

    public static let shared: Countries = {
        guard let countries = load() else { fatalError("countries.tsv is missing from the BookingAPI bundle") }
        return countries
    }()

    /// nil when the resource bundle was not deployed beside the executable.
    static func load() -> Countries? {
        guard let url = Bundle.module.url(forResource: "countries", withExtension: "tsv"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return nil }
        return Countries(tsv: text)
    }

    init(tsv: String) {
        var codes: [String: String] = [:]
        for line in tsv.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: "\t").map(String.init)
            guard fields.count >= 2 else { continue }
            let alpha2 = fields[0].uppercased()
            for key in fields { codes[Self.normalise(key)] = alpha2 }
        }
        self.codes = codes
    }

    public func alpha2(for input: String) -> String? {
        codes[Self.normalise(input)]
    }

    private static let posix = Locale(identifier: "en_US_POSIX")

    static func normalise(_ text: String) -> String {
        let trimmed = text.trimmedOfWhitespace()
        // ASCII has no diacritics and folds case as `lowercased` does; Foundation's folding
        // (and a locale made per call) cost ~4 % of a submission.
        if trimmed.utf8.allSatisfy({ $0 < 0x80 }) { return trimmed.lowercased() }
        return trimmed.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: posix).lowercased()
    }
}
