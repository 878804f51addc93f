import Foundation

/// The password rules, in one place for every path that sets a password (the API, the
/// `manage-passwords` stdin, imports): 12–1024 characters, not the username (ignoring case),
/// not one of the 10,000 most common passwords (ignoring case).
public enum PasswordPolicy {
    public static let lengths = 12...1024

    /// Why `password` may not be used, or nil when it may.
    public static func check(_ password: String, username: String? = nil) -> String? {
        guard lengths.contains(password.count) else {
            return "must be \(lengths.lowerBound)–\(lengths.upperBound) characters"
        }
        if let username, password.lowercased() == username.lowercased() {
            return "must not be the username"
        }
        if CommonPasswords.shared.contains(password) {
            return "is one of the most common passwords; choose another"
        }
        return nil
    }

    /// 24 characters from an alphabet without look-alikes, from the system's CSPRNG.
    public static func generate(length: Int = 24) -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_")
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
    }
}

/// SecLists' top-10,000 passwords (MIT; `Resources/common-passwords.README.md`), lower-cased.
struct CommonPasswords: Sendable {
    private let passwords: Set<String>

    static let shared: CommonPasswords = {
        guard let list = load() else { fatalError("common-passwords.txt is missing from the BookingAPI bundle") }
        return list
    }()

    /// nil when the resource bundle was not deployed beside the executable.
    static func load() -> CommonPasswords? {
        guard let url = Bundle.module.url(forResource: "common-passwords", withExtension: "txt"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return nil }
        return CommonPasswords(text: text)
    }

    init(text: String) {
        passwords = Set(text.split(whereSeparator: \.isNewline).map { $0.lowercased() })
    }

    var count: Int { passwords.count }

    func contains(_ password: String) -> Bool { passwords.contains(password.lowercased()) }
}
