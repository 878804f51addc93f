# Production image: build with the Swift toolchain, run on slim Debian as a non-root user.
#   docker build -f docker/deploy.Dockerfile -t booking-api .
FROM swift:6.3-bookworm AS build
# Package versions follow the Debian release the base image pins (bookworm): exact version pins
# would break the build at every Debian security update, since the archive keeps only the newest.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libargon2-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer so source edits do not refetch them.
COPY Package.swift ./
# The manifest also names the benchmark's floor peer (scripts/bench.d/peer); SwiftPM wants its
# sources present to load the package, though the image ships only the three executables.
COPY scripts/bench.d/peer ./scripts/bench.d/peer
RUN swift package resolve
COPY Sources ./Sources
RUN swift build -c release --static-swift-stdlib \
    && mkdir /staging \
    && cp "$(swift build -c release --show-bin-path)"/booking-server \
          "$(swift build -c release --show-bin-path)"/migration-runner \
          "$(swift build -c release --show-bin-path)"/manage-passwords /staging/ \
    && cp -R "$(swift build -c release --show-bin-path)"/booking-api_BookingAPI.resources /staging/

FROM debian:bookworm-slim
# Same reason as above for unpinned versions. curl serves the HEALTHCHECK only.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends libargon2-1 ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 booking \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin booking
WORKDIR /app
COPY --from=build /staging/ /app/
COPY Migrations /app/Migrations
ENV PATH=/app:$PATH HOST=0.0.0.0 PORT=8080 MIGRATIONS_DIR=/app/Migrations APP_ENV=prod
# Numeric, so Kubernetes can check runAsNonRoot against the image itself.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/app/booking-server"]
