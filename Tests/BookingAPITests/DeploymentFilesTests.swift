import Foundation
import Testing

@testable import BookingAPI

/// No Docker engine or cluster runs here, so the deployment files are checked for what can
/// go stale: paths, executables, variable names and probes.
@Suite struct DeploymentFilesTests {
    let root = TestEnvironment.packageRoot.path

    func read(_ path: String) throws -> String {
        try String(contentsOfFile: "\(root)/\(path)", encoding: .utf8)
    }

    var executables: Set<String> {
        get throws {
            let manifest = try read("Package.swift")
            let matches = manifest.matches(of: /\.executable\(name: "([^"]+)"/).map { String($0.1) }
            return Set(matches)
        }
    }

    @Test func dockerfilesCopyOnlyWhatExists() throws {
        for file in ["docker/deploy.Dockerfile", "docker/db.Dockerfile", "docker/test.Dockerfile"] {
            for line in try read(file).split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from") {
                let parts = line.split(separator: " ").dropFirst().map(String.init)
                for source in parts.dropLast() {
                    #expect(FileManager.default.fileExists(atPath: "\(root)/\(source)"), "\(file): \(source)")
                }
            }
        }
        let deploy = try read("docker/deploy.Dockerfile")
        for executable in try executables {
            #expect(deploy.contains("show-bin-path)\"/\(executable)"), "deploy image lacks \(executable)")
        }
        #expect(deploy.contains("USER 10001:10001"))
        #expect(deploy.contains("libargon2-1"))
        #expect(deploy.contains("COPY Migrations"))
        // The server refuses to start without its resource bundle beside the executable.
        #expect(deploy.contains("booking-api_BookingAPI.resources /staging/"))
    }

    @Test func composeAndManifestsUseRealNamesAndProbes() throws {
        let known = Set(AppConfiguration.variables.flatMap { [$0, "\($0)_FILE"] })
        let compose = try read("docker/docker-compose.yml")
        #expect(compose.contains("docker/deploy.Dockerfile") && compose.contains("docker/db.Dockerfile"))
        #expect(compose.contains("http://127.0.0.1:8080/ping"))
        #expect(compose.contains("service_completed_successfully"))

        let executableNames = try executables
        let manifests = try FileManager.default.contentsOfDirectory(atPath: "\(root)/tools/k8s").filter { $0.hasSuffix(".yaml") }
        #expect(manifests.count >= 4)
        for manifest in manifests {
            let text = try read("tools/k8s/\(manifest)")
            for match in text.matches(of: /- \{ name: ([A-Z_]+), value:/) {
                #expect(known.contains(String(match.1)), "\(manifest): unknown variable \(match.1)")
            }
            for match in text.matches(of: /\/app\/([a-z-]+)/) where match.1 != "Migrations" {
                #expect(executableNames.contains(String(match.1)), "\(manifest): no executable \(match.1)")
            }
            for match in text.matches(of: /image: (\S+)/) {
                #expect(match.1 == "booking-api:latest", "\(manifest)")
            }
        }
        let deployment = try read("tools/k8s/deployment.yaml")
        #expect(deployment.contains("readinessProbe:\n            httpGet: { path: /ping"))
        #expect(deployment.contains("livenessProbe:\n            httpGet: { path: /healthz"))
        #expect(try read("tools/k8s/rotate-cronjob.yaml").contains("manage-passwords rotate"))
    }

    /// Parses every manifest (and the compose file) as YAML with PyYAML, then checks structure.
    @Test func manifestsParseAndWireTheRightThings() async throws {
        let script = """
            import json, sys, yaml
            docs = []
            for path in sys.argv[1:]:
                with open(path) as f:
                    docs.extend(d for d in yaml.safe_load_all(f) if d)
            print(json.dumps(docs))
            """
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(root)/tools/k8s").filter { $0.hasSuffix(".yaml") }
            .map { "\(root)/tools/k8s/\($0)" } + ["\(root)/docker/docker-compose.yml"]
        let parsed = try await runProgram("/usr/bin/env", ["python3", "-c", script] + files)
        try #require(parsed.status == 0, "YAML does not parse: \(parsed.stderr)")
        let documents = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [[String: Any]])
        let kinds = documents.compactMap { $0["kind"] as? String }
        #expect(Set(kinds).isSuperset(of: ["Deployment", "Service", "Job", "CronJob", "Secret"]), "\(kinds)")

        let known = Set(AppConfiguration.variables.flatMap { [$0, "\($0)_FILE"] })
        func containers(_ document: [String: Any]) -> [[String: Any]] {
            let spec = document["spec"] as? [String: Any]
            let template = (spec?["template"] ?? ((spec?["jobTemplate"] as? [String: Any])?["spec"] as? [String: Any])?["template"]) as? [String: Any]
            return ((template?["spec"] as? [String: Any])?["containers"] as? [[String: Any]]) ?? []
        }
        for document in documents where ["Deployment", "Job", "CronJob"].contains(document["kind"] as? String ?? "") {
            let list = containers(document)
            #expect(!list.isEmpty, "\(document["kind"] ?? "") has no containers")
            for container in list {
                #expect(container["image"] as? String == "booking-api:latest")
                for env in container["env"] as? [[String: Any]] ?? [] {
                    #expect(known.contains(env["name"] as? String ?? ""), "unknown variable \(env["name"] ?? "")")
                }
            }
        }
        let deployment = try #require(documents.first { $0["kind"] as? String == "Deployment" })
        let server = try #require(containers(deployment).first)
        let readiness = (server["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        let liveness = (server["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        #expect(readiness?["path"] as? String == "/ping")
        #expect(liveness?["path"] as? String == "/healthz")
        let env = Set((server["env"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(env.isSuperset(of: ["DATABASE_URL_FILE", "JWT_PRIVATE_KEY_FILE", "APP_ENV"]))
        let compose = try #require(documents.first { $0["services"] != nil }?["services"] as? [String: Any])
        #expect(Set(compose.keys) == ["db", "migrate", "server"])
    }

    @Test func readmeDocumentsEveryVariable() throws {
        let readme = try read("README.md")
        for variable in AppConfiguration.variables {
            #expect(readme.contains("`\(variable)`"), "README lacks \(variable)")
        }
    }

    @Test func deployGatePassesOnlyACurrentSchema() async throws {
        let gate = "\(root)/tools/deploy-gate"
        let runner = "\(TestEnvironment.binDirectory)/migration-runner"
        let database = try await TestDatabase.create(migrated: false)
        let env = ["DATABASE_URL": database.connectionString, "MIGRATION_RUNNER": runner]

        let fresh = try await runProgram(gate, ["--migrations-dir", TestEnvironment.migrationsDirectory], environment: env)
        #expect(fresh.status == 0, "\(fresh.output)")
        #expect(fresh.stderr.contains("safe to roll out"))

        let broken = try copyOfMigrations()
        try "SELECT * FROM missing_table;\n".write(toFile: "\(broken)/\(try nextMigrationVersion())_broken.sql", atomically: true, encoding: .utf8)
        let failed = try await runProgram(gate, ["--migrations-dir", broken], environment: env)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("do not roll out"))

        let drifted = try copyOfMigrations()
        try "-- edited\n".write(toFile: "\(drifted)/0001_users.sql", atomically: true, encoding: .utf8)
        let drift = try await runProgram(gate, ["--migrations-dir", drifted], environment: env)
        #expect(drift.status != 0)
        #expect(!drift.output.contains(database.url.password!))
    }
}
