# The action's image. GitHub's runner builds it with a plain `docker build` when action.yml says
# `image: Dockerfile` (main and branch references); a release builds it once, pushes it, and pins it by
# digest in the release commit's action.yml (.github/workflows/release.yml), which sets the build arguments.

# Build a static binary on the build machine's platform, for the target's.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION is the release tag, stamped into `immune version` and the User-Agent. Empty (a build from a branch),
# the binary reports what the Go toolchain recorded: "devel", as .git is not in the build context.
ARG VERSION=""
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
    -ldflags="-s -w -X github.com/immune-cd/immune/internal/version.stamped=${VERSION}" -o /out/immune .

# Run it where deploy commands find the usual tools: bash, curl, git, jq, ssh and CA certificates.
#  - Left out, through dpkg's path-exclude (the way the slim base image leaves out documentation): git's
#    server and mail programs (daemon, http-backend, shell, imap-send, WebDAV http-push), scalar, and its
#    perl scripts (instaweb, the old add--interactive) and modules; no deploy command runs these.
#  - Removed: the full perl (libperl and perl-modules, about 50 MB), which Debian's git depends on only for those
#    scripts. git's dependency on it is dropped from dpkg's status and `apt-get check` verifies the result, so
#    a deploy command can still `apt-get install` anything (perl comes back with what needs it). perl-base
#    (/usr/bin/perl, an essential package) stays.
#  - git trusts every repository (safe.directory '*', system-wide): the runner mounts the workspace owned by
#    its own user while the container runs as root, and git refuses such a repository ("detected dubious
#    ownership", actions/runner#2033). A path would not do: a checkout may sit anywhere under the workspace
#    (actions/checkout `path:`), and bookworm's git 2.39 matches safe.directory paths exactly. The check
#    protects a user from another user's repository on a shared machine; this container is one job's, and
#    runs only repositories that job mounted.
FROM debian:bookworm-slim
RUN printf '%s\n' \
      path-exclude=/usr/lib/git-core/git-daemon \
      path-exclude=/usr/lib/git-core/git-http-backend \
      path-exclude=/usr/lib/git-core/git-http-push \
      path-exclude=/usr/lib/git-core/git-imap-send \
      path-exclude=/usr/lib/git-core/git-shell \
      path-exclude=/usr/lib/git-core/git-instaweb \
      path-exclude=/usr/lib/git-core/git-add--interactive \
      path-exclude=/usr/lib/git-core/scalar \
      path-exclude=/usr/bin/scalar \
      path-exclude=/usr/bin/git-shell \
      path-exclude=/usr/share/gitweb/* \
      path-exclude=/usr/share/perl5/Git.pm \
      path-exclude=/usr/share/perl5/Git/* \
      > /etc/dpkg/dpkg.cfg.d/immune-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates curl git jq openssh-client \
 && perl=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' perl liberror-perl 'perl-modules-*' 'libperl5.*' \
      | awk '$1 == "ii" { print $2 }') \
 && dpkg --purge --force-depends $perl \
 && awk '/^Package: / { pkg = $2 } pkg == "git" && /^Depends: / { n = sub(/, perl, liberror-perl,/, ",") } { print } \
      END { exit n == 1 ? 0 : 1 }' /var/lib/dpkg/status > /tmp/status \
 && mv /tmp/status /var/lib/dpkg/status \
 && apt-get check \
 && git config --system --add safe.directory '*' \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
      /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY --from=build /out/immune /usr/local/bin/immune
# OCI labels; the release sets REVISION and SOURCE (a fork's repository), and VERSION as above.
ARG VERSION=""
ARG REVISION=""
ARG SOURCE=https://github.com/immune-cd/immune
LABEL org.opencontainers.image.title="immune" \
      org.opencontainers.image.description="Deploy every commit, watch its health, and roll back what regresses." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
ENTRYPOINT ["/usr/local/bin/immune"]
