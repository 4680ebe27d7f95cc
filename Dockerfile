# syntax=docker/dockerfile:1
# Multi-stage: a static, stripped pubsubd built with the README's flags, and pubsubctl beside it, on a
# distroless image that runs as a non-root user and has no shell (Kubernetes' preStop therefore uses
# the sleep action).

# The Go release is the one CI's govulncheck step scans (.ci/go-version; cmd/pubsubd's
# dockerfile_test.go keeps them equal): the shipped binary's standard library is what clients meet.
# A full patch version, so a rebuild does not silently change the scanned toolchain.
FROM golang:1.27.3-bookworm AS build
WORKDIR /src
# Modules first, so the download layer is cached while only sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ ./cmd/
COPY internal/ ./internal/
COPY telemetry/ ./telemetry/
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /out/pubsubd ./cmd/pubsubd
# The command-line client too (static, about 7 MB): the runtime image has no shell and no curl, so
# this is how an operator looks at a pod from inside it: kubectl exec deploy/pubsub -- /pubsubctl stats
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/pubsubctl ./cmd/pubsubctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pubsubd /pubsubd
COPY --from=build /out/pubsubctl /pubsubctl
USER 65532:65532
# 8080: WebSocket /ws and REST; 9464: admin (/metrics, the web console /console/, /debug/pprof).
EXPOSE 8080 9464
ENV PUBSUB_LOG_FORMAT=json
ENTRYPOINT ["/pubsubd"]
