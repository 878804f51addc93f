import Foundation
import Testing

@testable import BookingAPI

/// No Docker engine or cluster runs here, so the deployment files are checked for what can
/// go stale: paths, executables, variable names, probes and the pod security settings.
/// `scripts/check-deploy` renders the Kustomize overlays and runs kubernetes-validate, checkov
/// and hadolint over them; these tests check what those tools cannot know about this project.
@Suite struct DeploymentFilesTests {
    typealias Object = [String: Any]

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

    /// Every variable the server reads, and its `_FILE` form.
    var knownVariables: Set<String> { Set(AppConfiguration.variables.flatMap { [$0, "\($0)_FILE"] }) }

    /// The YAML files under tools/k8s, by path relative to it.
    var manifestPaths: [String] {
        get throws {
            try FileManager.default.subpathsOfDirectory(atPath: "\(root)/tools/k8s").filter { $0.hasSuffix(".yaml") }.sorted()
        }
    }

    @Test func dockerfilesCopyOnlyWhatExists() throws {
        for file in ["docker/deploy.Dockerfile", "docker/db.Dockerfile", "docker/test.Dockerfile"] {
            let text = try read(file)
            for line in text.split(separator: "\n") where line.hasPrefix("COPY ") && !line.contains("--from") {
                let parts = line.split(separator: " ").dropFirst().map(String.init)
                for source in parts.dropLast() {
                    #expect(FileManager.default.fileExists(atPath: "\(root)/\(source)"), "\(file): \(source)")
                }
            }
            // Exec form only: a shell-form CMD, ENTRYPOINT or HEALTHCHECK runs under /bin/sh.
            for line in text.split(separator: "\n").map(String.init) {
                var command: Substring?
                if line.hasPrefix("CMD ") { command = line.dropFirst(4) }
                if line.hasPrefix("ENTRYPOINT ") { command = line.dropFirst(11) }
                if line.hasPrefix("HEALTHCHECK "), let range = line.range(of: " CMD ") { command = line[range.upperBound...] }
                if let command { #expect(command.hasPrefix("["), "\(file): not exec form: \(line)") }
            }
        }
        let deploy = try read("docker/deploy.Dockerfile")
        // bench-peer is the benchmark's comparison server, never deployed; its sources must be
        // in the image's build context, since the manifest names them.
        #expect(deploy.contains("COPY scripts/bench.d/peer ./scripts/bench.d/peer"))
        for executable in try executables where executable != "bench-peer" {
            #expect(deploy.contains("show-bin-path)\"/\(executable)"), "deploy image lacks \(executable)")
        }
        // Numeric, and the same user the manifests run as.
        #expect(deploy.contains("USER 10001:10001"))
        #expect(deploy.contains("--uid 10001"))
        #expect(deploy.contains("libargon2-1"))
        #expect(deploy.contains("COPY Migrations"))
        #expect(deploy.contains("HEALTHCHECK"))
        // The server refuses to start without its resource bundle beside the executable.
        #expect(deploy.contains("booking-api_BookingAPI.resources /staging/"))
    }

    @Test func composeAndManifestsUseRealNamesAndProbes() throws {
        let compose = try read("docker/docker-compose.yml")
        #expect(compose.contains("docker/deploy.Dockerfile") && compose.contains("docker/db.Dockerfile"))
        #expect(compose.contains("http://127.0.0.1:8080/ping"))
        #expect(compose.contains("service_completed_successfully"))

        let executableNames = try executables
        let manifests = try manifestPaths
        #expect(manifests.contains("base/kustomization.yaml"))
        #expect(manifests.contains("overlays/dev/kustomization.yaml") && manifests.contains("overlays/prod/kustomization.yaml"))
        for manifest in manifests {
            let text = try read("tools/k8s/\(manifest)")
            for match in text.matches(of: /- \{ name: ([A-Z_]+), value:/) {
                #expect(knownVariables.contains(String(match.1)), "\(manifest): unknown variable \(match.1)")
            }
            for match in text.matches(of: /\/app\/([a-z-]+)/) where match.1 != "Migrations" {
                #expect(executableNames.contains(String(match.1)), "\(manifest): no executable \(match.1)")
            }
            #expect(!text.contains(":latest"), "\(manifest) names a :latest image")
        }
        let deployment = try read("tools/k8s/base/deployment.yaml")
        #expect(deployment.contains("readinessProbe:\n            httpGet: { path: /ping"))
        #expect(deployment.contains("livenessProbe:\n            httpGet: { path: /healthz"))
        #expect(deployment.contains("startupProbe:\n            httpGet: { path: /healthz"))
        // Where the resource numbers come from.
        #expect(deployment.contains("BENCHMARKS.md"))
    }

    /// Every manifest under tools/k8s (and the compose file) parsed with PyYAML; the inline
    /// patches of kustomization files are parsed too.
    func parsedManifests() async throws -> (files: [String: [Object]], inlinePatches: [String: [Any]], compose: Object) {
        let script = """
            import json, os, sys, yaml
            root, compose = sys.argv[1], sys.argv[2]
            files, inline = {}, {}
            for directory, _, names in os.walk(root):
                for name in names:
                    if not name.endswith(".yaml"):
                        continue
                    path = os.path.join(directory, name)
                    with open(path) as f:
                        docs = [d for d in yaml.safe_load_all(f) if d]
                    relative = os.path.relpath(path, root)
                    files[relative] = docs
                    for doc in docs:
                        for patch in doc.get("patches", []) if doc.get("kind") == "Kustomization" else []:
                            if "patch" in patch:
                                inline.setdefault(relative, []).append(yaml.safe_load(patch["patch"]))
            with open(compose) as f:
                compose_doc = yaml.safe_load(f)
            print(json.dumps({"files": files, "inline": inline, "compose": compose_doc}))
            """
        let parsed = try await runProgram(
            "/usr/bin/env", ["python3", "-c", script, "\(root)/tools/k8s", "\(root)/docker/docker-compose.yml"]
        )
        try #require(parsed.status == 0, "YAML does not parse: \(parsed.stderr)")
        let all = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? Object)
        let files = try #require(all["files"] as? [String: [Object]])
        return (files, all["inline"] as? [String: [Any]] ?? [:], all["compose"] as? Object ?? [:])
    }

    func object(_ value: Any?) -> Object { value as? Object ?? [:] }
    func objects(_ value: Any?) -> [Object] { value as? [Object] ?? [] }

    /// The pod spec of a Deployment, Job or CronJob.
    func podSpec(_ document: Object) -> Object {
        let spec = object(document["spec"])
        if let template = spec["template"] { return object(object(template)["spec"]) }
        return object(object(object(object(spec["jobTemplate"])["spec"])["template"])["spec"])
    }

    func containers(_ podSpec: Object) -> [Object] { objects(podSpec["initContainers"]) + objects(podSpec["containers"]) }

    /// What the "restricted" Pod Security Standard and the sizing rules require of a container.
    func restrictedProblems(_ container: Object) -> [String] {
        let name = container["name"] as? String ?? "?"
        var problems: [String] = []
        let security = object(container["securityContext"])
        let capabilities = object(security["capabilities"])
        if security["allowPrivilegeEscalation"] as? Bool != false { problems.append("\(name): allowPrivilegeEscalation") }
        if security["readOnlyRootFilesystem"] as? Bool != true { problems.append("\(name): readOnlyRootFilesystem") }
        if security["privileged"] as? Bool == true { problems.append("\(name): privileged") }
        if !(capabilities["drop"] as? [String] ?? []).contains("ALL") { problems.append("\(name): capabilities not dropped") }
        if !(capabilities["add"] as? [String] ?? []).isEmpty { problems.append("\(name): capabilities added") }
        let resources = object(container["resources"])
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] where object(resources[kind])[resource] == nil {
                problems.append("\(name): no \(resource) \(kind)")
            }
        }
        return problems
    }

    /// The pod-level rules, every container's, and the writable /tmp each container needs.
    func podProblems(_ spec: Object) -> [String] {
        var problems: [String] = []
        let security = object(spec["securityContext"])
        if security["runAsNonRoot"] as? Bool != true { problems.append("pod: runAsNonRoot") }
        if (security["runAsUser"] as? Int ?? 0) < 10000 { problems.append("pod: runAsUser below 10000") }
        if object(security["seccompProfile"])["type"] as? String != "RuntimeDefault" { problems.append("pod: seccompProfile") }
        if spec["automountServiceAccountToken"] as? Bool != false { problems.append("pod: service-account token mounted") }
        for field in ["hostNetwork", "hostPID", "hostIPC"] where spec[field] as? Bool == true { problems.append("pod: \(field)") }
        let volumes = Dictionary(objects(spec["volumes"]).map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        for container in containers(spec) {
            let name = container["name"] as? String ?? "?"
            problems += restrictedProblems(container)
            let mounts = objects(container["volumeMounts"])
            for mount in mounts where volumes[mount["name"] as? String ?? ""] == nil {
                problems.append("\(name): mount \(mount["name"] ?? "") has no volume")
            }
            let tmp = mounts.first { $0["mountPath"] as? String == "/tmp" }
            if volumes[tmp?["name"] as? String ?? ""]?["emptyDir"] == nil {
                problems.append("\(name): no emptyDir at /tmp")
            }
        }
        return problems
    }

    @Test func basePodsAreRestrictedSizedAndWired() async throws {
        let (files, _, compose) = try await parsedManifests()
        let executableNames = try executables
        let kustomization = try #require(files["base/kustomization.yaml"]?.first)
        #expect(kustomization["namespace"] as? String == "booking", "nothing may land in the default namespace")
        let listed = Set(kustomization["resources"] as? [String] ?? [])
        let present = Set(files.keys.filter { $0.hasPrefix("base/") && $0 != "base/kustomization.yaml" }.map { String($0.dropFirst(5)) })
        #expect(listed == present, "base/kustomization.yaml resources \(listed.sorted()) vs files \(present.sorted())")

        let base = files.filter { $0.key.hasPrefix("base/") }.flatMap(\.value)
        let kinds = Set(base.compactMap { $0["kind"] as? String })
        #expect(kinds.isSuperset(of: [
            "Namespace", "ServiceAccount", "Deployment", "Service", "Job", "CronJob",
            "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
        ]), "\(kinds.sorted())")
        let namespace = try #require(base.first { $0["kind"] as? String == "Namespace" })
        #expect(object(object(namespace["metadata"])["labels"])["pod-security.kubernetes.io/enforce"] as? String == "restricted")

        for document in base where ["Deployment", "Job", "CronJob"].contains(document["kind"] as? String ?? "") {
            let kind = document["kind"] as? String ?? ""
            let spec = podSpec(document)
            let list = containers(spec)
            #expect(!list.isEmpty, "\(kind) has no containers")
            #expect(podProblems(spec).isEmpty, "\(kind): \(podProblems(spec))")
            for container in list {
                // A placeholder every overlay replaces with a tag or digest.
                #expect(container["image"] as? String == "booking-api", "\(kind): \(container["image"] ?? "")")
                for env in objects(container["env"]) {
                    let name = env["name"] as? String ?? ""
                    // Only the pod's own metadata may add a variable the server does not read.
                    let fromPodMetadata = object(env["valueFrom"])["fieldRef"] != nil
                    #expect(knownVariables.contains(name) || fromPodMetadata, "\(kind): unknown variable \(name)")
                }
                if let command = (container["command"] as? [String])?.first, command.hasPrefix("/app/") {
                    #expect(executableNames.contains(String(command.dropFirst(5))), "\(kind): no executable \(command)")
                }
            }
        }

        let deployment = try #require(base.first { $0["kind"] as? String == "Deployment" })
        let server = try #require(objects(podSpec(deployment)["containers"]).first)
        func probePath(_ name: String) -> String? { object(object(server[name])["httpGet"])["path"] as? String }
        #expect(probePath("startupProbe") == "/healthz")
        #expect(probePath("readinessProbe") == "/ping")
        #expect(probePath("livenessProbe") == "/healthz")
        let env = Set(objects(server["env"]).compactMap { $0["name"] as? String })
        #expect(env.isSuperset(of: ["DATABASE_URL_FILE", "JWT_PRIVATE_KEY_FILE", "APP_ENV"]))
        let spread = objects(podSpec(deployment)["topologySpreadConstraints"]).compactMap { $0["topologyKey"] as? String }
        #expect(spread.contains("kubernetes.io/hostname"))

        let job = try #require(base.first { $0["kind"] as? String == "Job" })
        // The deploy gate: migrate, then require the schema to be exactly this release's.
        #expect(objects(podSpec(job)["initContainers"]).first?["args"] as? [String] == ["up", "--migrations-dir", "/app/Migrations", "--lock-timeout", "120"])
        #expect((objects(podSpec(job)["containers"]).first?["args"] as? [String])?.first == "status")
        let cronJob = try #require(base.first { $0["kind"] as? String == "CronJob" })
        let rotate = try #require(objects(podSpec(cronJob)["containers"]).first)
        #expect(rotate["command"] as? [String] == ["/app/manage-passwords"])
        #expect((rotate["args"] as? [String])?.first == "rotate")

        let hpa = try #require(base.first { $0["kind"] as? String == "HorizontalPodAutoscaler" })
        #expect(objects(object(hpa["spec"])["metrics"]).contains { object($0["resource"])["name"] as? String == "cpu" })
        let serverPolicy = try #require(base.first { $0["kind"] as? String == "NetworkPolicy" && object($0["metadata"])["name"] as? String == "booking-api-server" })
        let ingressPorts = objects(object(serverPolicy["spec"])["ingress"]).flatMap { objects($0["ports"]) }.compactMap { $0["port"] as? String }
        #expect(ingressPorts == ["http"], "ingress to the HTTP port only")
        let egressPorts = Set(objects(object(serverPolicy["spec"])["egress"]).flatMap { objects($0["ports"]) }.compactMap { $0["port"] as? Int })
        #expect(egressPorts == [5432, 53, 443])

        let secrets = try #require(files["secrets.example.yaml"])
        #expect(secrets.contains { $0["kind"] as? String == "Secret" })
        #expect(try read("tools/k8s/secrets.example.yaml").contains("CHANGE-ME"))
        let services = object(compose["services"])
        #expect(Set(services.keys) == ["db", "migrate", "server"])
    }

    @Test func overlaysPinImagesAndSetEnvironment() async throws {
        let (files, inlinePatches, _) = try await parsedManifests()
        for overlay in ["dev", "prod"] {
            let kustomization = try #require(files["overlays/\(overlay)/kustomization.yaml"]?.first)
            #expect((kustomization["resources"] as? [String] ?? []).contains("../../base"), "\(overlay)")
            let image = try #require(objects(kustomization["images"]).first { $0["name"] as? String == "booking-api" }, "\(overlay) sets no image")
            let tag = image["newTag"] as? String
            let digest = image["digest"] as? String
            #expect(tag != nil || digest != nil, "\(overlay): image has neither tag nor digest")
            #expect(tag != "latest", "\(overlay): :latest")
            if let digest { #expect(digest.wholeMatch(of: /sha256:[0-9a-f]{64}/) != nil, "\(overlay): \(digest)") }
            #expect(objects(kustomization["replicas"]).contains { $0["name"] as? String == "booking-api" && ($0["count"] as? Int) != nil }, "\(overlay)")

            let documents = files.filter { $0.key.hasPrefix("overlays/\(overlay)/") }.flatMap(\.value)
            let appEnv = documents.filter { $0["kind"] as? String == "Deployment" }
                .flatMap { objects(podSpec($0)["containers"]) }
                .flatMap { objects($0["env"]) }
                .first { $0["name"] as? String == "APP_ENV" }?["value"] as? String
            #expect(appEnv == overlay, "\(overlay): APP_ENV \(appEnv ?? "unset")")

            // Containers an overlay adds (they carry an image) meet the same rules as the base's.
            var added = documents.filter { ["Deployment", "Job", "CronJob"].contains($0["kind"] as? String ?? "") }
                .flatMap { containers(podSpec($0)) }
            for patch in inlinePatches["overlays/\(overlay)/kustomization.yaml"] ?? [] {
                added += (patch as? [Object] ?? []).compactMap { $0["value"] as? Object }.filter { $0["image"] != nil }
            }
            for container in added where container["image"] != nil {
                #expect(container["image"] as? String == "booking-api", "\(overlay): \(container["image"] ?? "")")
                #expect(restrictedProblems(container).isEmpty, "\(overlay): \(restrictedProblems(container))")
            }
        }
    }

    @Test func prodRunsOnAThreeInstanceCloudNativePGCluster() async throws {
        let (files, _, _) = try await parsedManifests()
        let prod = files.filter { $0.key.hasPrefix("overlays/prod/") }.flatMap(\.value)
        let kustomization = try #require(files["overlays/prod/kustomization.yaml"]?.first)
        let cluster = try #require(prod.first { $0["kind"] as? String == "Cluster" })
        #expect(cluster["apiVersion"] as? String == "postgresql.cnpg.io/v1")
        let name = try #require(object(cluster["metadata"])["name"] as? String)
        #expect(object(cluster["spec"])["instances"] as? Int == 3)
        let owner = object(object(object(cluster["spec"])["bootstrap"])["initdb"])["owner"] as? String
        #expect(owner != nil, "the database needs an owner for migration-runner")
        #expect((kustomization["resources"] as? [String] ?? []).contains { path in
            files["overlays/prod/\(path)"]?.contains { $0["kind"] as? String == "Cluster" } == true
        })

        // Every workload reads DATABASE_URL_FILE from the operator's secret for the owner, whose
        // `uri` names the read-write service <cluster>-rw: it follows the primary.
        for kind in ["Deployment", "Job", "CronJob"] {
            let database = try #require(
                prod.filter { $0["kind"] as? String == kind }
                    .compactMap { objects(podSpec($0)["volumes"]).first { $0["name"] as? String == "db" } }.first,
                "prod has no database patch for \(kind)"
            )
            let secret = object(database["secret"])
            #expect(secret["secretName"] as? String == "\(name)-app", "\(kind)")
            #expect(objects(secret["items"]).contains { $0["key"] as? String == "uri" && $0["path"] as? String == "database-url" }, "\(kind)")
        }
        let base = files.filter { $0.key.hasPrefix("base/") }.flatMap(\.value)
        let deployment = try #require(base.first { $0["kind"] as? String == "Deployment" })
        let server = try #require(objects(podSpec(deployment)["containers"]).first)
        let urlFile = objects(server["env"]).first { $0["name"] as? String == "DATABASE_URL_FILE" }?["value"] as? String
        #expect(urlFile == "/run/secrets/db/database-url")
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
