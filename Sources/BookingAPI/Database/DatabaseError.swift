import Foundation
import PostgresNIO
import _ConnectionPoolModule

/// Every failure of the database layer, in one type. Stores map `constraint` to their own domain
/// errors; the HTTP layer maps `unavailable` to 503 + Retry-After and anything else to a bare
/// 500; the CLIs print `description`. Nothing here carries a query or a bound value.
public enum DatabaseError: Error, CustomStringConvertible, Sendable {
    public enum Unavailability: String, Sendable {
        /// The deadline passed: waiting for a connection and running the statements together.
        case timeout
        /// PostgreSQL refused, reset, terminated or could not be reached.
        case unreachable
        /// A deadlock or serialization failure persisted through every retry.
        case conflict
    }

    case unavailable(Unavailability, reason: String)
    /// PostgreSQL refused a change for an integrity constraint (SQLSTATE class 23).
    case constraint(sqlState: String, constraint: String?)
    /// The schema is missing or older than the code (undefined table or column).
    case schemaNotMigrated(reason: String)
    /// Anything else: a bug, logged by SQLSTATE and message only.
    case unexpected(sqlState: String, message: String)

    public var description: String {
        switch self {
        case .unavailable(_, let reason): reason
        case .constraint(let state, let name): "constraint \(name ?? "?") refused the change (SQLSTATE \(state))"
        case .schemaNotMigrated(let reason): "the schema is not migrated (\(reason)); run migration-runner up"
        case .unexpected(let state, let message): "SQLSTATE \(state): \(message)"
        }
    }

    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }

    /// SQLSTATEs of transient conflicts that are retried: deadlock, serialization failure.
    static let transientConflicts: Set<String> = ["40P01", "40001"]

    /// Translates whatever the driver or the pool threw. Returns nil for errors that are not the
    /// database's (cancellation, the caller's own errors), which pass through unchanged.
    static func translating(_ error: any Error) -> DatabaseError? {
        switch error {
        case let error as DatabaseError:
            return error
        case let error as PSQLError:
            return translating(error)
        case let error as PostgresTransactionError:
            // Prefer the error of the statement that failed over that of the rollback.
            if let closure = error.closureError { return translating(closure) }
            if let begin = error.beginError { return translating(begin) }
            if let commit = error.commitError { return translating(commit) }
            return error.rollbackError.flatMap(translating)
        case let error as ConnectionPoolError:
            switch error {
            case .connectionCreationCircuitBreakerTripped:
                return .unavailable(.unreachable, reason: "no connection to PostgreSQL could be made")
            case .poolShutdown:
                return .unavailable(.unreachable, reason: "the connection pool is shut down")
            default:
                return .unavailable(.unreachable, reason: "the connection pool failed")
            }
        case let error as PostgresError:
            // The older API's errors (`PreparedQueries`).
            switch error {
            case .server(let server):
                return translating(
                    sqlState: server.fields[.sqlState] ?? "XX000", message: server.fields[.message] ?? "no message",
                    constraint: server.fields[.constraintName])
            case .connectionClosed:
                return .unavailable(.unreachable, reason: "PostgreSQL closed the connection")
            case .protocol(let message) where message == "Unexpected connection close":
                return .unavailable(.unreachable, reason: "PostgreSQL closed the connection")
            case .protocol:
                // Its text can quote a backend message: not logged.
                return .unexpected(sqlState: "-", message: "protocol error")
            }
        case let error as ChannelError:
            return .unavailable(.unreachable, reason: "connection failed (\(error))")
        case let error as IOError:
            return .unavailable(.unreachable, reason: "connection failed (\(error.description))")
        default:
            return nil
        }
    }

    static func translating(_ error: PSQLError) -> DatabaseError {
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? "XX000"
            let message = error.serverInfo?[.message] ?? "no message"
            return translating(sqlState: state, message: message, constraint: error.serverInfo?[.constraintName])
        case .connectionError:
            if let underlying = error.underlying {
                if let translated = translating(underlying) { return translated }
                return .unavailable(.unreachable, reason: "connection failed (\(underlying))")
            }
            return .unavailable(.unreachable, reason: "connection failed")
        case .serverClosedConnection, .uncleanShutdown:
            return .unavailable(.unreachable, reason: "PostgreSQL closed the connection")
        case .clientClosedConnection, .queryCancelled:
            return .unavailable(.timeout, reason: "the connection was closed before PostgreSQL answered")
        case .poolClosed:
            return .unavailable(.unreachable, reason: "the connection pool is shut down")
        case .sslUnsupported:
            return .unavailable(.unreachable, reason: "the server does not accept TLS, but sslmode requires it")
        case .saslError, .unsupportedAuthMechanism, .authMechanismRequiresPassword:
            return .unavailable(.unreachable, reason: "authentication failed (\(error.code))")
        default:
            return .unexpected(sqlState: "-", message: "\(error.code)")
        }
    }

    static func translating(sqlState state: String, message: String, constraint: String?) -> DatabaseError {
        switch state {
        case "57014", "55P03", "25P03":
            // statement_timeout, lock_timeout, idle_in_transaction_session_timeout.
            return .unavailable(.timeout, reason: message)
        case _ where transientConflicts.contains(state):
            return .unavailable(.conflict, reason: message)
        case "28P01", "28000", "3D000":
            // Wrong password, no such role, no such database: the operator's to fix.
            return .unavailable(.unreachable, reason: message)
        case "42P01", "42703":
            return .schemaNotMigrated(reason: message)
        case _ where state.hasPrefix("23"):
            return .constraint(sqlState: state, constraint: constraint)
        case _ where state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P"):
            // Connection exceptions, insufficient resources (too many connections), and the
            // server shutting down, crashing or starting up.
            return .unavailable(.unreachable, reason: message)
        default:
            return .unexpected(sqlState: state, message: message)
        }
    }

    static func isTransientConflict(_ error: any Error) -> Bool {
        if case .unavailable(.conflict, _)? = translating(error) { return true }
        return false
    }
}
