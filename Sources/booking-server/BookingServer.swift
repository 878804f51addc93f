import ArgumentParser
import BookingAPI
import Foundation

@main
struct BookingServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "booking-server",
        abstract: "Serves the Booking API.",
        discussion: """
            Configuration comes from the environment; each variable may also be given as NAME_FILE, \
            a path to a file holding the value: \(AppConfiguration.variables.joined(separator: ", ")). \
            See the README's configuration table. A missing or malformed variable stops start-up with \
            one line naming it (exit 2). SIGTERM and SIGINT drain in-flight requests before exit.
            """
    )

    func run() async throws {
        let configuration: AppConfiguration
        do {
            configuration = try AppConfiguration.load()
        } catch {
            CommandSupport.fail("booking-server", "\(error)")
            throw ExitCode(2)
        }
        bootstrapObservability(configuration)
        do {
            try await runServer(configuration)
        } catch {
            CommandSupport.fail("booking-server", "\(error)")
            throw ExitCode(1)
        }
    }
}
