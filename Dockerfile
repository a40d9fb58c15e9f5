# Build a static binary on the build machine's platform, for the target's.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/immune .

# Run it where deploy commands find the usual tools.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates curl git jq openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/immune /usr/local/bin/immune
ENTRYPOINT ["/usr/local/bin/immune"]
