import CArgon2
import Foundation

/// argon2id through libargon2, producing and checking encoded PHC strings
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Blocking: call it from `PasswordHasher`.
enum Argon2 {
    struct Parameters: Equatable {
        var memoryKiB: Int
        var iterations: Int
        var parallelism: Int
    }

    enum Failure: Error {
        case library(Int32)
    }

    static let saltLength = 16
    static let hashLength = 32

    static func hash(_ password: String, parameters: Parameters) throws -> String {
        var salt = [UInt8](repeating: 0, count: saltLength)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = generator.next() }
        let length = argon2_encodedlen(
            UInt32(parameters.iterations), UInt32(parameters.memoryKiB), UInt32(parameters.parallelism),
            UInt32(saltLength), UInt32(hashLength), Argon2_id
        )
        var encoded = [CChar](repeating: 0, count: length + 1)
        let password = Array(password.utf8)
        let result = argon2id_hash_encoded(
            UInt32(parameters.iterations), UInt32(parameters.memoryKiB), UInt32(parameters.parallelism),
            password, password.count, salt, salt.count, hashLength, &encoded, encoded.count
        )
        guard result == ARGON2_OK.rawValue else { throw Failure.library(result) }
        return String(decoding: encoded.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when `password` matches; libargon2 compares in constant time.
    static func verify(_ password: String, encoded: String) -> Bool {
        let password = Array(password.utf8)
        return argon2id_verify(encoded, password, password.count) == ARGON2_OK.rawValue
    }

    /// The cost parameters inside an encoded hash, if it is an argon2id PHC string.
    static func parameters(of encoded: String) -> Parameters? {
        let fields = encoded.split(separator: "$")
        guard fields.count == 5, fields[0] == "argon2id" else { return nil }
        var values: [Substring: Int] = [:]
        for pair in fields[2].split(separator: ",") {
            let parts = pair.split(separator: "=")
            guard parts.count == 2, let number = Int(parts[1]) else { return nil }
            values[parts[0]] = number
        }
        guard let m = values["m"], let t = values["t"], let p = values["p"] else { return nil }
        return Parameters(memoryKiB: m, iterations: t, parallelism: p)
    }
}
