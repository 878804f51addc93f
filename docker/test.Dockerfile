# Runs the whole test suite the way CI does: scripts/test on a clean Debian with Swift.
#   docker build -f docker/test.Dockerfile -t booking-test . && docker run --rm booking-test
FROM swift:6.3-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 openssl sudo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift README.md ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY Migrations ./Migrations
COPY scripts ./scripts
CMD ["scripts/test"]
