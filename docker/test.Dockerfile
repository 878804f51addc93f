# Runs the whole test suite the way CI does: scripts/test on a clean Debian with Swift.
#   docker build -f docker/test.Dockerfile -t booking-test . && docker run --rm booking-test
FROM swift:6.3-bookworm
# Package versions follow the Debian release the base image pins (bookworm): exact version pins
# would break the build at every Debian security update, since the archive keeps only the newest.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends python3 openssl sudo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift README.md ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY Migrations ./Migrations
COPY scripts ./scripts
# DeploymentFilesTests reads the manifests and these Dockerfiles.
COPY tools ./tools
COPY docker ./docker
# scripts/check-deploy needs a kubectl with Kustomize 5, which bookworm's archive does not carry
# (its kubernetes-client is 1.20); CI's machine runs that step.
ENV DEPLOY_CHECK=0
CMD ["scripts/test"]
