import BookingAPI
import Foundation
import Logging

@main
struct BookingServer {
    static func main() async {
        let configuration: AppConfiguration
        do {
            configuration = try AppConfiguration.load()
        } catch {
            CommandSupport.fail("booking-server", "\(error)")
            exit(2)
        }
        bootstrapObservability(configuration)
        do {
            try await runServer(configuration)
        } catch {
            CommandSupport.fail("booking-server", "\(error)")
            exit(1)
        }
    }
}
