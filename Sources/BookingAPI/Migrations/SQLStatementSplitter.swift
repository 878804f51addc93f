import Foundation
/// Splits a SQL script into statements, because postgres-nio speaks only the extended query
/// protocol (one statement per query). Understands quotes, quoted identifiers, dollar quoting,
/// and line and (nested) block comments — enough for migration files.
struct SQLStatementSplitter {
    struct Statement: Equatable {
        var text: String
        /// 1-based line of the file where the statement starts.
        var line: Int
    }

    static func split(_ sql: String) -> [Statement] {
        let characters = Array(sql)
        var statements: [Statement] = []
        var current = ""
        var startLine = 1
        var line = 1
        var index = 0
        var hasContent = false

        func flush() {
            let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if hasContent, !trimmed.isEmpty {
                statements.append(Statement(text: trimmed, line: startLine))
            }
            current = ""
            hasContent = false
        }

        while index < characters.count {
            let character = characters[index]
            let next: Character? = index + 1 < characters.count ? characters[index + 1] : nil
            if !hasContent, !character.isWhitespace, !(character == "-" && next == "-"), !(character == "/" && next == "*") {
                hasContent = true
                startLine = line
            }
            switch character {
            case "-" where next == "-":
                // Comments before a statement are not part of it, so error positions map to lines.
                while index < characters.count, characters[index] != "\n" {
                    if hasContent { current.append(characters[index]) }
                    index += 1
                }
                continue
            case "/" where next == "*":
                var depth = 0
                while index < characters.count {
                    if characters[index] == "/", index + 1 < characters.count, characters[index + 1] == "*" {
                        depth += 1
                        if hasContent { current.append("/*") }
                        index += 2
                        continue
                    }
                    if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "/" {
                        depth -= 1
                        if hasContent { current.append("*/") }
                        index += 2
                        if depth == 0 { break }
                        continue
                    }
                    if characters[index] == "\n" { line += 1 }
                    if hasContent { current.append(characters[index]) }
                    index += 1
                }
                continue
            case "'", "\"":
                current.append(character)
                index += 1
                while index < characters.count {
                    let inner = characters[index]
                    current.append(inner)
                    index += 1
                    if inner == "\n" { line += 1 }
                    if inner == character {
                        // A doubled quote is an escaped quote, not the end.
                        if index < characters.count, characters[index] == character {
                            current.append(character)
                            index += 1
                            continue
                        }
                        break
                    }
                }
                continue
            case "$":
                if let tag = dollarTag(characters, at: index) {
                    current.append(contentsOf: tag)
                    index += tag.count
                    while index < characters.count {
                        if characters[index] == "$", Array(characters[index..<min(index + tag.count, characters.count)]) == Array(tag) {
                            current.append(contentsOf: tag)
                            index += tag.count
                            break
                        }
                        if characters[index] == "\n" { line += 1 }
                        current.append(characters[index])
                        index += 1
                    }
                    continue
                }
            case ";":
                index += 1
                flush()
                continue
            case "\n":
                line += 1
            default:
                break
            }
            current.append(character)
            index += 1
        }
        flush()
        return statements
    }

    /// `$$` or `$tag$` starting at `index`, if there is one.
    private static func dollarTag(_ characters: [Character], at index: Int) -> String? {
        var end = index + 1
        while end < characters.count, characters[end] == "_" || characters[end].isLetter || (end > index + 1 && characters[end].isNumber) {
            end += 1
        }
        guard end < characters.count, characters[end] == "$" else { return nil }
        return String(characters[index...end])
    }
}
