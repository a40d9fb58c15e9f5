#!/usr/bin/env bash
# Container test of the immune action.
#
# Users of a container action get the image GitHub builds from our Dockerfile, run with the inputs,
# environment and mounts the runner gives it. This script builds that image from the real Dockerfile
# (unchanged) with buildah and runs it with podman the way the runner runs container actions. It needs no
# Docker engine and no container registry: it installs Debian's buildah/podman/runc/skopeo/debootstrap and
# makes the Dockerfile's base images locally.
#
# Usage: scripts/container-test.sh [MODE] [--cold] [--keep]
#   --quick   tools, base images, image build, entrypoint check, and the image run as the runner runs it:
#             (a) healthy deploy -> exit 0, (b) crashing deploy rolled back -> exit 1,
#             (c) the rollback target crashes too -> rollback-failed, exit 1, (d) as `uses: docker://IMAGE`
#             (no action.yml defaults) -> exit 0, (e) an invalid input -> exit 2, nothing deployed
#   --full    (default) --quick, then an end-to-end run of testdata/workflows/act-deploy.yml through act
#   --setup   tools and base images only
#   --act     tools, base images, image build and the act run only (to work on the act workflow)
#   --cold    first delete the cache folder and this script's images (base images, build layers, the
#             built image) from the image storage (and dangling layers: podman image prune), to measure
#             from nothing
#   --keep    keep the run folder (workspaces, logs, outputs) and print its path
#
# It ends with "container-test: N passed, N failed" and a timing table, and exits non-zero on any failure.
# Run as root (apt-get, buildah, podman). Tools: apt-get install buildah podman runc skopeo debootstrap
# curl jq python3-yaml (done here when missing); act: go install github.com/nektos/act@v0.2.89 (done here).
#
# Environment:
#   CONTAINER_TEST_CACHE    cache folder (default: <repo>/.ci/cache/container-test, git-ignored): the
#                           debootstrap root filesystem tarball, the containers config files, the act binary.
#   CONTAINER_TEST_STORAGE  image storage folder (default: the machine's, /var/lib/containers/storage). Not in
#                           the repository: it holds Go source trees (the golang image, the module cache) that
#                           `gofmt -l .` would walk into. Base images and build layers stay there between runs
#                           and clones on the same machine; the base images are remade when what they are made
#                           of changes (ROOTFS_RECIPE in this script, the host's CA certificates, the Go version).
#
# The script makes whatever is missing; --cold shows the time from nothing.
set -euo pipefail

MODE=full
COLD=0
KEEP=0
for arg in "$@"; do
	case "$arg" in
	--quick) MODE=quick ;;
	--full) MODE=full ;;
	--setup) MODE=setup ;;
	--act) MODE=act ;;
	--cold) COLD=1 ;;
	--keep) KEEP=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "container-test: unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CONTAINER_TEST_CACHE:-$ROOT/.ci/cache/container-test}
IMAGE=localhost/immune:container-test
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
GOLANG_IMAGE=docker.io/library/golang:1.26-bookworm
ACT_VERSION=v0.2.89
ACT_MODULE=github.com/nektos/act
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Two commits that look real; the scenarios deploy them.
GOOD_SHA=1f0c2d3e4b5a69788796a5b4c3d2e1f00f1e2d3c
NEW_SHA=9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d
BAD_SHA=c0ffee00badc0de0000000000000000000bad0a1

T0=$(date +%s%N)
TIMINGS=()
FAILURES=0
PASSES=0
PIDS=()
WITH_DEFAULTS=1
EXTRA_ENV=()

log() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'container-test: %s\n' "$*" >&2
	exit 1
}
now() { date +%s%N; }
# since START: seconds since START (a now value), e.g. 12.34
since() {
	local cs=$((($(date +%s%N) - $1) / 10000000))
	printf '%d.%02d' $((cs / 100)) $((cs % 100))
}
# timed NAME CMD...: runs CMD and records how long it took (a failure ends the script, as set -e does).
timed() {
	local name=$1 start
	shift
	start=$(now)
	"$@"
	TIMINGS+=("$(printf '%-36s %8ss' "$name" "$(since "$start")")")
}
not_found() {
	local what=$1
	shift
	! grep -q -- "$what" "$@"
}
pass() {
	PASSES=$((PASSES + 1))
	printf '  ok    %s\n' "$*"
}
fail() {
	FAILURES=$((FAILURES + 1))
	printf '  FAIL  %s\n' "$*"
}
# verify DESCRIPTION CMD...: passes when CMD succeeds.
verify() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}
# check DESCRIPTION GOT WANT
check() {
	if [[ "$2" == "$3" ]]; then pass "$1 = ${2@Q}"; else fail "$1: got ${2@Q}, want ${3@Q}"; fi
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n "${RUN:-}" && -d "$RUN" ]]; then
		if ((KEEP)); then
			echo "Run folder kept: $RUN"
		else
			rm -rf "$RUN"
		fi
	fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------------------
# Tools and configuration

install_tools() {
	local missing=() t
	for t in buildah podman runc skopeo debootstrap curl jq; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	# action.yml is read with Python's YAML module (Debian's python3-yaml).
	PYTHON=
	local py
	for py in python3 /usr/bin/python3; do
		if "$py" -c 'import yaml' 2>/dev/null; then
			PYTHON=$py
			break
		fi
	done
	[[ -n "$PYTHON" ]] || missing+=(python3-yaml)
	if ((${#missing[@]})); then
		log "Installing ${missing[*]} from Debian"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			buildah podman runc skopeo debootstrap curl jq python3 python3-yaml >/dev/null
		[[ -n "$PYTHON" ]] || PYTHON=/usr/bin/python3
	fi
	command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
	command -v go >/dev/null || die "go is not on PATH (expected /usr/local/go/bin)"
}

# write_conf points podman, buildah and skopeo at config files for this kind of machine: crun (podman's
# default runtime) fails here on hybrid cgroups and on raising rlimits, so runc with cgroupfs; short names
# such as golang:1.26-bookworm resolve to docker.io, where the seeded base images are tagged.
write_conf() {
	mkdir -p "$CACHE/conf"
	cat >"$CACHE/conf/containers.conf" <<-'EOF'
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
	EOF
	cat >"$CACHE/conf/registries.conf" <<-'EOF'
		unqualified-search-registries = ["docker.io"]
		short-name-mode = "permissive"
	EOF
	if [[ -n "${CONTAINER_TEST_STORAGE:-}" ]]; then
		# runroot holds locks and mount state only: on /run, one per storage folder.
		local runroot
		runroot=/run/immune-container-test/$(printf '%s' "$CONTAINER_TEST_STORAGE" | md5sum | cut -c1-12)
		cat >"$CACHE/conf/storage.conf" <<-EOF
			[storage]
			driver = "overlay"
			graphroot = "$CONTAINER_TEST_STORAGE"
			runroot = "$runroot"
		EOF
		export CONTAINERS_STORAGE_CONF=$CACHE/conf/storage.conf
	else
		rm -f "$CACHE/conf/storage.conf"
	fi
	export CONTAINERS_CONF=$CACHE/conf/containers.conf
	export CONTAINERS_REGISTRIES_CONF=$CACHE/conf/registries.conf
	export BUILDAH_ISOLATION=chroot
}

# ---------------------------------------------------------------------------------------------------------
# Base images

# rootfs_tarball makes (once) a slim Debian bookworm root filesystem like the official bookworm-slim image:
# debootstrap minbase, with docs, man pages, locales, apt lists and downloaded .debs removed and kept out of
# later installs, and the sources of the official image (bookworm, -updates, -security).
ROOTFS_TAR=
rootfs_tarball() {
	ROOTFS_TAR=$CACHE/debian-bookworm-minbase.tar
	[[ -s "$ROOTFS_TAR" ]] && {
		echo "Cached root filesystem: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
		return
	}
	log "debootstrap --variant=minbase bookworm (cold, about 45 s)"
	local dir=$CACHE/rootfs.tmp
	rm -rf "$dir"
	mkdir -p "$dir"
	debootstrap --variant=minbase bookworm "$dir" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
		{
			tail -20 "$CACHE/debootstrap.log"
			die "debootstrap failed (log: $CACHE/debootstrap.log)"
		}
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
		"$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* "$dir"/var/log/*.log
	find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
		# Like the official slim image: no docs, man pages or translations.
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/groff/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/lintian/*
		path-exclude /usr/share/linda/*
		path-exclude /usr/share/locale/*
	EOF
	cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
	EOF
	rm -f "$dir/etc/apt/sources.list"
	cat >"$dir/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $DEBIAN_MIRROR
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: ${DEBIAN_MIRROR%/debian}/debian-security
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	: >"$dir/etc/hostname"
	: >"$dir/etc/resolv.conf"
	tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.tmp" .
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	rm -rf "$dir"
	echo "Root filesystem: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

# seed_key is what the seeded base images are made of; an image whose label differs is remade. Bump
# ROOTFS_RECIPE when rootfs_tarball or seed_images changes.
ROOTFS_RECIPE=1
seed_key() {
	{
		echo "recipe $ROOTFS_RECIPE $DEBIAN_MIRROR"
		cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
		go version
		cat "$(go env GOROOT)/VERSION"
	} | sha256sum | cut -c1-16
}

image_label() { podman image inspect --format "{{index .Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# seed_images makes the Dockerfile's base images in local storage, under the names the Dockerfile uses:
#   debian:bookworm-slim   the root filesystem, trusting the host's proxy CA certificates (they sit in
#                          /usr/local/share/ca-certificates, so the ca-certificates package that the
#                          Dockerfile installs adds them to the bundle);
#   golang:1.26-bookworm   that plus the machine's Go toolchain and the host's CA bundle (go mod download in
#                          the build goes through a TLS-re-signing proxy), with the official image's GOPATH,
#                          PATH and working directory, and GOTOOLCHAIN=local.
seed_images() {
	local key ctr goroot gover
	key=$(seed_key)
	if [[ "$(image_label "$DEBIAN_IMAGE" immune.seed)" == "$key" && "$(image_label "$GOLANG_IMAGE" immune.seed)" == "$key" ]]; then
		echo "Base images up to date (seed $key): $DEBIAN_IMAGE, $GOLANG_IMAGE"
		return
	fi
	rootfs_tarball
	log "Seeding $DEBIAN_IMAGE"
	ctr=$(buildah from scratch)
	buildah add --quiet "$ctr" "$ROOTFS_TAR" / >/dev/null
	if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
		buildah copy --quiet "$ctr" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
	fi
	buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--os linux --arch amd64 --label immune.seed="$key" "$ctr"
	buildah commit --quiet --rm "$ctr" "$DEBIAN_IMAGE" >/dev/null

	log "Seeding $GOLANG_IMAGE from the machine's Go ($(go version | cut -d' ' -f3))"
	goroot=$(go env GOROOT)
	gover=$(go env GOVERSION)
	ctr=$(buildah from --pull=false "$DEBIAN_IMAGE")
	buildah copy --quiet "$ctr" "$goroot" /usr/local/go >/dev/null
	buildah copy --quiet "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
	buildah run "$ctr" -- mkdir -p /go/bin /go/src
	buildah config --env GOLANG_VERSION="${gover#go}" --env GOPATH=/go --env GOTOOLCHAIN=local \
		--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--workingdir /go --label immune.seed="$key" "$ctr"
	buildah commit --quiet --rm "$ctr" "$GOLANG_IMAGE" >/dev/null
	podman images
}

# ---------------------------------------------------------------------------------------------------------
# The image

build_image() {
	log "buildah bud --isolation chroot --pull=false --layers -t $IMAGE (the real Dockerfile)"
	local start
	start=$(now)
	if ! buildah bud --isolation chroot --pull=false --layers -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" \
		>"$RUN/build.log" 2>&1; then
		tail -40 "$RUN/build.log"
		die "image build failed (full log above or in $RUN/build.log with --keep)"
	fi
	grep -E 'STEP [0-9]|^COMMIT|Using cache' "$RUN/build.log" | sed 's/^/  /' || true
	BUILD_SECONDS=$(since "$start")
	echo "Image built in ${BUILD_SECONDS}s"
}

inspect_image() {
	log "Image size and entrypoint"
	local size cfg entry cmd
	podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$IMAGE"
	size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
	IMAGE_SIZE_MB=$((size / 1000000))
	echo "Image size: $IMAGE_SIZE_MB MB ($size bytes, uncompressed)"
	cfg=$(skopeo inspect --config "containers-storage:$IMAGE")
	entry=$(jq -c '.config.Entrypoint' <<<"$cfg")
	cmd=$(jq -c '.config.Cmd' <<<"$cfg")
	# The entrypoint must be the binary itself: a shell in between drops INPUT_ variables with hyphens.
	check "skopeo: Entrypoint" "$entry" '["/usr/local/bin/immune"]'
	check "skopeo: Cmd" "$cmd" 'null'
	check "skopeo: architecture" "$(jq -r '.architecture' <<<"$cfg")" amd64
	local ver
	ver=$(podman run --rm "$IMAGE" version 2>&1) || true
	verify "immune version in the image: $ver" test "${ver#immune }" != "$ver"
	local tools
	tools=$(podman run --rm --entrypoint /bin/sh "$IMAGE" -c 'for t in bash curl git jq ssh; do command -v $t >/dev/null || echo missing $t; done')
	check "tools for deploy commands in the image (bash curl git jq ssh)" "$tools" ""
}

# ---------------------------------------------------------------------------------------------------------
# Running the image as the runner does

# action_defaults prints NAME\0DEFAULT\0 for every input of action.yml that has a default.
action_defaults() {
	"$PYTHON" - "$ROOT/action.yml" <<-'EOF'
		import sys, yaml
		with open(sys.argv[1]) as f:
		    action = yaml.safe_load(f)
		for name, spec in (action.get("inputs") or {}).items():
		    default = (spec or {}).get("default")
		    if default is None:
		        continue
		    if isinstance(default, bool):
		        default = "true" if default else "false"
		    sys.stdout.write(f"{name}\0{default}\0")
	EOF
}

# start_service SCRIPT_JSON CURRENT_SHA: starts the scripted test service on 127.0.0.1 and sets PORT.
PORT=
start_service() {
	local name=$1 script=$2 current=$3 out=$RUN/$1-service.out
	printf '%s\n' "$script" >"$RUN/$name-script.json"
	"$RUN/testservice" -script "$RUN/$name-script.json" -current "$current" >"$out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		[[ -s "$out" ]] && break
		sleep 0.05
	done
	local addr
	addr=$(head -1 "$out")
	PORT=${addr##*:}
	[[ "$PORT" =~ ^[0-9]+$ ]] || die "test service did not start: $(cat "$out")"
	curl -fsS "http://127.0.0.1:$PORT/current" >/dev/null || die "test service on $addr does not answer"
}

# output FILE NAME: the value of a step output in a GITHUB_OUTPUT file (name=value or name<<DELIM lines).
output() {
	awk -v want="$2" '
		delim != "" { if ($0 == delim) { if (name == want) { print val; exit } delim = ""; next }
		              val = (first ? $0 : val "\n" $0); first = 0; next }
		/^[^=<]+<</ { name = substr($0, 1, index($0, "<<") - 1); delim = substr($0, index($0, "<<") + 2); val = ""; first = 1; next }
		/^[^=]+=/ { n = substr($0, 1, index($0, "=") - 1); if (n == want) { print substr($0, index($0, "=") + 1); exit } }
	' "$1"
}

# run_action NAME TOKEN INPUT=VALUE...: runs the image like GitHub's runner runs a container action, with
# every action.yml default as INPUT_<NAME> (uppercased, hyphens kept) and the given inputs overriding them.
# WITH_DEFAULTS=0 leaves the defaults out, as the runner does for a step with `uses: docker://IMAGE`.
# Sets RC, OUT (the GITHUB_OUTPUT file), SUMMARY, WS (workspace) and SECONDS_TAKEN.
run_action() {
	local name=$1 token=$2
	shift 2
	local base=$RUN/$name
	WS=$base/workspace
	mkdir -p "$WS" "$base/workflow" "$base/file_commands" "$base/home"
	printf 'A checked-out repository.\n' >"$WS/README.md"
	OUT=$base/file_commands/set_output_$name
	SUMMARY=$base/file_commands/step_summary_$name
	: >"$OUT"
	: >"$SUMMARY"
	: >"$base/file_commands/set_env_$name"
	: >"$base/file_commands/add_path_$name"
	: >"$base/file_commands/save_state_$name"

	declare -A inputs=()
	local order=() k v
	if ((WITH_DEFAULTS)); then
		while IFS= read -r -d '' k && IFS= read -r -d '' v; do
			# shellcheck disable=SC2016 # the runner's expressions, literally
			case "$v" in
			'${{ github.token }}') v=$token ;;
			*'${{'*) die "action.yml default of $k is an expression this test does not evaluate: $v" ;;
			esac
			inputs[$k]=$v
			order+=("$k")
		done < <(action_defaults)
		((${#order[@]} > 10)) || die "read only ${#order[@]} inputs from action.yml"
	fi
	local kv
	for kv in "$@"; do
		k=${kv%%=*}
		[[ -v "inputs[$k]" ]] || {
			inputs[$k]=
			order+=("$k")
		}
		inputs[$k]=${kv#*=}
	done

	local args=(run --rm --name "immune-ct-$name-$$"
		--workdir /github/workspace --network host
		-v "$base/home:/github/home" -v "$base/workflow:/github/workflow"
		-v "$base/file_commands:/github/file_commands" -v "$WS:/github/workspace")
	for k in "${order[@]}"; do
		# The runner's name: upper case, spaces to underscores, hyphens kept (INPUT_HEALTH-URL).
		local envname="INPUT_${k^^}"
		args+=(-e "${envname// /_}=${inputs[$k]}")
	done
	args+=(-e HOME=/github/home -e CI=true -e GITHUB_ACTIONS=true -e GITHUB_JOB=deploy
		-e GITHUB_REF=refs/heads/main -e GITHUB_REF_NAME=main -e GITHUB_REF_TYPE=branch
		-e GITHUB_REPOSITORY=immune-cd/shop -e GITHUB_REPOSITORY_OWNER=immune-cd
		-e GITHUB_RUN_ID=4242 -e GITHUB_RUN_NUMBER=7 -e GITHUB_RUN_ATTEMPT=1
		-e GITHUB_ACTOR=octocat -e GITHUB_WORKFLOW=deploy -e GITHUB_ACTION=__immune-cd_immune
		-e GITHUB_SERVER_URL=https://github.com
		-e GITHUB_EVENT_NAME=push -e GITHUB_EVENT_PATH=/github/workflow/event.json
		-e GITHUB_WORKSPACE=/github/workspace
		-e "GITHUB_OUTPUT=/github/file_commands/set_output_$name"
		-e "GITHUB_STEP_SUMMARY=/github/file_commands/step_summary_$name"
		-e "GITHUB_ENV=/github/file_commands/set_env_$name"
		-e "GITHUB_PATH=/github/file_commands/add_path_$name"
		-e "GITHUB_STATE=/github/file_commands/save_state_$name"
		-e RUNNER_OS=Linux -e RUNNER_ARCH=X64 -e RUNNER_NAME=container-test -e RUNNER_TEMP=/tmp
		-e RUNNER_ENVIRONMENT=self-hosted)
	args+=("${EXTRA_ENV[@]}")
	args+=("$IMAGE")

	local start
	start=$(now)
	RC=0
	podman "${args[@]}" >"$base/stdout.log" 2>&1 || RC=$?
	SECONDS_TAKEN=$(since "$start")
	sed 's/^/  | /' "$base/stdout.log"
	echo "  container exit code $RC after ${SECONDS_TAKEN}s"
}

# push_event BEFORE AFTER: a push event as GitHub writes it, into the scenario's workflow folder.
push_event() {
	local name=$1 before=$2 after=$3
	mkdir -p "$RUN/$name/workflow"
	cat >"$RUN/$name/workflow/event.json" <<-EOF
		{
		  "ref": "refs/heads/main",
		  "before": "$before",
		  "after": "$after",
		  "created": false,
		  "deleted": false,
		  "forced": false,
		  "base_ref": null,
		  "compare": "https://github.com/immune-cd/shop/compare/${before:0:12}...${after:0:12}",
		  "commits": [{"id": "$after", "message": "Change the shop", "timestamp": "2026-11-25T21:00:00Z",
		    "author": {"name": "Octo Cat", "email": "octocat@example.com", "username": "octocat"}, "distinct": true}],
		  "head_commit": {"id": "$after", "message": "Change the shop", "timestamp": "2026-11-25T21:00:00Z"},
		  "repository": {"id": 1296269, "name": "shop", "full_name": "immune-cd/shop", "private": false,
		    "owner": {"login": "immune-cd", "id": 1}, "default_branch": "main", "html_url": "https://github.com/immune-cd/shop"},
		  "pusher": {"name": "octocat", "email": "octocat@example.com"},
		  "sender": {"login": "octocat", "id": 583231, "type": "User"}
		}
	EOF
}

# The deploy command runs inside the image: it uses the image's curl and jq, over the host network.
# (No pipe from curl into jq: /bin/sh has no pipefail, so a failed curl would pass.)
deploy_command() {
	# shellcheck disable=SC2016 # expanded by /bin/sh in the container, not here
	printf '%s' 'out=$(curl -fsS -X POST "http://127.0.0.1:'"$1"'/deploy?sha=$IMMUNE_SHA") && echo "$out" | jq -e --arg s "$IMMUNE_SHA" '"'"'.deployed == $s'"'"' >/dev/null && echo "deployed $IMMUNE_SHA ($IMMUNE_REASON) to $IMMUNE_ENVIRONMENT"'
}

short_inputs() {
	printf '%s\n' "health-url=http://127.0.0.1:$1/health" "deploy-command=$(deploy_command "$1")" \
		interval=100ms timeout=100ms duration=2s startup-timeout=1s rollback-duration=1s deploy-timeout=30s \
		expect-version=header:X-Version
}

scenario_healthy() {
	log "Scenario (a): healthy deploy of ${NEW_SHA:0:7} over ${GOOD_SHA:0:7}"
	start_service healthy '{}' "$GOOD_SHA"
	push_event healthy "$GOOD_SHA" "$NEW_SHA"
	local inputs
	mapfile -t inputs < <(short_inputs "$PORT")
	# A token, as the runner passes github.token, with the GitHub API out of reach: the action must still
	# work, with the state file as its memory.
	EXTRA_ENV=(-e "GITHUB_SHA=$NEW_SHA" -e GITHUB_API_URL=http://127.0.0.1:9 -e GITHUB_GRAPHQL_URL=http://127.0.0.1:9/graphql)
	run_action healthy ghs_containerTestDummyToken0000000000000 "${inputs[@]}"
	HEALTHY_SECONDS=$SECONDS_TAKEN
	check "(a) exit code" "$RC" 0
	check "(a) output verdict" "$(output "$OUT" verdict)" healthy
	check "(a) output rolled-back" "$(output "$OUT" rolled-back)" false
	check "(a) output sha" "$(output "$OUT" sha)" "$NEW_SHA"
	check "(a) output previous-sha (push event's before)" "$(output "$OUT" previous-sha)" "$GOOD_SHA"
	check "(a) service runs" "$(curl -fsS "http://127.0.0.1:$PORT/current" | jq -r .sha)" "$NEW_SHA"
	verify "(a) job summary written" test -s "$SUMMARY"
	verify "(a) state file written in the workspace" test -s "$WS/.immune/state.json"
	verify "(a) report written in the workspace" test -s "$WS/.immune/report.json"
	# The runner reads ::add-mask:: and hides the value; anywhere else the token is a leak.
	verify "(a) the token appears nowhere but in ::add-mask::" \
		not_found ghs_containerTestDummyToken <(grep -v '^::add-mask::' "$RUN/healthy/stdout.log") "$SUMMARY" "$OUT"
}

scenario_crash() {
	log "Scenario (b): ${BAD_SHA:0:7} crashes (503) and is rolled back to ${GOOD_SHA:0:7}"
	start_service crash "{\"$BAD_SHA\": {\"fail_rate\": 1.0, \"fail_status\": 503}}" "$GOOD_SHA"
	push_event crash "$GOOD_SHA" "$BAD_SHA"
	local inputs
	mapfile -t inputs < <(short_inputs "$PORT")
	# No token (github-token: ''), no GitHub API variables: the state file and the push event are all it has.
	EXTRA_ENV=(-e "GITHUB_SHA=$BAD_SHA")
	run_action crash "" "${inputs[@]}"
	CRASH_SECONDS=$SECONDS_TAKEN
	check "(b) exit code" "$RC" 1
	check "(b) output verdict" "$(output "$OUT" verdict)" rolled-back
	check "(b) output rolled-back" "$(output "$OUT" rolled-back)" true
	check "(b) output sha" "$(output "$OUT" sha)" "$BAD_SHA"
	check "(b) output previous-sha (push event's before)" "$(output "$OUT" previous-sha)" "$GOOD_SHA"
	check "(b) service runs the rollback target" "$(curl -fsS "http://127.0.0.1:$PORT/current" | jq -r .sha)" "$GOOD_SHA"
	verify "(b) job summary written" test -s "$SUMMARY"
}

scenario_rollback_fails() {
	log "Scenario (c): ${BAD_SHA:0:7} crashes and so does the rollback target ${GOOD_SHA:0:7}"
	start_service rollback-fails "{\"$BAD_SHA\": {\"fail_rate\": 1.0, \"fail_status\": 503}, \"$GOOD_SHA\": {\"fail_rate\": 1.0, \"fail_status\": 502}}" "$GOOD_SHA"
	push_event rollback-fails "$GOOD_SHA" "$BAD_SHA"
	local inputs
	mapfile -t inputs < <(short_inputs "$PORT")
	EXTRA_ENV=(-e "GITHUB_SHA=$BAD_SHA")
	run_action rollback-fails "" "${inputs[@]}"
	check "(c) exit code" "$RC" 1
	check "(c) output verdict" "$(output "$OUT" verdict)" rollback-failed
	check "(c) output rolled-back" "$(output "$OUT" rolled-back)" true
	check "(c) output previous-sha" "$(output "$OUT" previous-sha)" "$GOOD_SHA"
}

scenario_docker_uses() {
	log "Scenario (d): as a step with uses: docker://IMAGE (no action.yml, so no defaults; inputs from with: only)"
	start_service docker-uses '{}' "$GOOD_SHA"
	push_event docker-uses "$GOOD_SHA" "$NEW_SHA"
	local inputs
	mapfile -t inputs < <(short_inputs "$PORT")
	EXTRA_ENV=(-e "GITHUB_SHA=$NEW_SHA")
	WITH_DEFAULTS=0 run_action docker-uses "" "${inputs[@]}"
	check "(d) exit code" "$RC" 0
	check "(d) output verdict" "$(output "$OUT" verdict)" healthy
	check "(d) output previous-sha" "$(output "$OUT" previous-sha)" "$GOOD_SHA"
}

scenario_bad_input() {
	log "Scenario (e): an invalid input stops the run before anything is deployed"
	start_service bad-input '{}' "$GOOD_SHA"
	push_event bad-input "$GOOD_SHA" "$NEW_SHA"
	local inputs
	mapfile -t inputs < <(short_inputs "$PORT")
	EXTRA_ENV=(-e "GITHUB_SHA=$NEW_SHA")
	run_action bad-input "" "${inputs[@]}" interval=soon
	check "(e) exit code" "$RC" 2
	check "(e) nothing deployed" "$(curl -fsS "http://127.0.0.1:$PORT/current" | jq -r .sha)" "$GOOD_SHA"
	verify "(e) the log names the input" grep -q interval "$RUN/bad-input/stdout.log"
}

# ---------------------------------------------------------------------------------------------------------
# act

# What act needs to run a container action from this repository on this machine:
#  - the binary, pinned: go install github.com/nektos/act@v0.2.89 (from the Go module proxy);
#  - -P ubuntu-latest=-self-hosted: jobs run on the host (no job container image can be pulled);
#  - DOCKER_HOST=unix://<socket of `podman system service`>: act builds the action's image from the
#    Dockerfile and runs it through the Docker API, which podman serves with the same storage, so the base
#    images seeded above and the build layers are found;
#  - a repository with a commit: act reads HEAD for GITHUB_SHA. The project's tree is copied (without .git
#    and .ci/cache) into a temporary folder that gets its own throwaway git history;
#  - a first step that copies that repository into act's workspace: on a self-hosted platform act does not
#    check anything out, and `uses: ./` is resolved in the workspace (IMMUNE_SRC tells the step where from);
#  - --container-options "-v <act cache dir>:<same path>": on a self-hosted platform act hands the action's
#    container GITHUB_OUTPUT and the other file-command paths as host paths under its cache folder, so that
#    folder must be mounted at the same path in the container for the outputs to come back;
#  - --container-options "--network host": on a self-hosted platform act starts the action's container on
#    the default (bridge) network, where 127.0.0.1 is the container itself and the test service is out of
#    reach (the runner's own network is what a real job would use).
install_act() {
	ACT=$CACHE/bin/act
	if [[ -x "$ACT" ]] && "$ACT" --version 2>/dev/null | grep -q "${ACT_VERSION#v}"; then
		echo "act: $("$ACT" --version)"
		return
	fi
	log "go install $ACT_MODULE@$ACT_VERSION"
	GOBIN=$CACHE/bin GOFLAGS=-buildvcs=false go install "$ACT_MODULE@$ACT_VERSION"
	echo "act: $("$ACT" --version)"
}

run_act() {
	install_act
	log "act: testdata/workflows/act-deploy.yml with uses: ./"
	local sock=$RUN/podman.sock
	podman system service --time=0 "unix://$sock" >"$RUN/podman-service.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		[[ -S "$sock" ]] && break
		sleep 0.1
	done
	[[ -S "$sock" ]] || die "podman system service did not start: $(cat "$RUN/podman-service.log")"
	curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null || die "podman service does not answer"

	local src=$RUN/act-repo
	mkdir -p "$src"
	tar -C "$ROOT" --exclude=./.git --exclude=./.ci/cache -cf - . | tar -C "$src" -xf -
	git -C "$src" init -q -b main
	git -C "$src" -c user.name=container-test -c user.email=container-test@localhost add -A
	git -C "$src" -c user.name=container-test -c user.email=container-test@localhost commit -q -m "act test tree"
	local sha
	sha=$(git -C "$src" rev-parse HEAD)
	cat >"$RUN/act-event.json" <<-EOF
		{"ref": "refs/heads/main", "before": "$GOOD_SHA", "after": "$sha",
		 "repository": {"name": "immune", "full_name": "immune-cd/immune", "owner": {"login": "immune-cd"}, "default_branch": "main"},
		 "head_commit": {"id": "$sha", "message": "act test tree"}}
	EOF
	# The testservice is built on the host; the workflow starts it.
	local xdg=$RUN/xdg-cache
	mkdir -p "$xdg/act"
	local start rc=0
	start=$(now)
	(
		cd "$src"
		DOCKER_HOST=unix://$sock XDG_CACHE_HOME=$xdg IMMUNE_SRC=$src IMMUNE_TESTSERVICE=$RUN/testservice \
			"$ACT" push -W testdata/workflows/act-deploy.yml -e "$RUN/act-event.json" \
			-P ubuntu-latest=-self-hosted --container-options "--network host -v $xdg/act:$xdg/act" \
			--env IMMUNE_SRC="$src" --env IMMUNE_TESTSERVICE="$RUN/testservice" \
			--env "IMMUNE_GOOD_SHA=$GOOD_SHA" --env "IMMUNE_BAD_SHA=$BAD_SHA"
	) >"$RUN/act.log" 2>&1 || rc=$?
	ACT_SECONDS=$(since "$start")
	sed 's/^/  | /' "$RUN/act.log" | grep -v -E '^\s*\|\s*\[.*\]\s+\|\s+[·✓✗ ]*$' | tail -120
	echo "  act exit code $rc after ${ACT_SECONDS}s"
	check "act run exit code" "$rc" 0
	verify "act: a later step saw the expected outputs" grep -q 'ACT-CHECK: all outputs as expected' "$RUN/act.log"
}

# ---------------------------------------------------------------------------------------------------------

main() {
	echo "container-test: mode $MODE, cache $CACHE"
	install_tools
	mkdir -p "$CACHE"
	write_conf
	if ((COLD)); then
		log "Cold start: deleting $CACHE and this script's images"
		# Only what this script made: its images, then the layers left dangling (podman image prune).
		podman rmi -f "$IMAGE" "$GOLANG_IMAGE" "$DEBIAN_IMAGE" localhost/act-dockeraction:latest \
			docker.io/library/act-dockeraction:latest >/dev/null 2>&1 || true
		podman image prune -f >/dev/null 2>&1 || true
		rm -rf "$CACHE"
		mkdir -p "$CACHE"
		write_conf
	fi
	RUN=$(mktemp -d /tmp/immune-container-test.XXXXXX)
	timed "base images" seed_images
	[[ "$MODE" == setup ]] && { summary; return; }

	timed "image build" build_image
	log "Building the test service (host)"
	timed "test service build" go build -o "$RUN/testservice" ./internal/testservice/cmd/testservice
	if [[ "$MODE" != act ]]; then
		inspect_image
		timed "scenario (a) healthy" scenario_healthy
		timed "scenario (b) crash + rollback" scenario_crash
		timed "scenario (c) rollback fails too" scenario_rollback_fails
		timed "scenario (d) uses: docker://" scenario_docker_uses
		timed "scenario (e) invalid input" scenario_bad_input
	fi
	if [[ "$MODE" == full || "$MODE" == act ]]; then
		timed "act end to end" run_act
	fi
	summary
}

summary() {
	log "Timings"
	printf '  %s\n' "${TIMINGS[@]}"
	[[ -z "${BUILD_SECONDS:-}" ]] || printf '  %-36s %8ss\n' "  of which buildah bud" "$BUILD_SECONDS"
	[[ -z "${IMAGE_SIZE_MB:-}" ]] || printf '  %-36s %8s MB\n' "image size (uncompressed)" "$IMAGE_SIZE_MB"
	[[ -z "${HEALTHY_SECONDS:-}" ]] || printf '  %-36s %8ss\n' "healthy container run (start-exit)" "$HEALTHY_SECONDS"
	[[ -z "${CRASH_SECONDS:-}" ]] || printf '  %-36s %8ss\n' "crash container run (start-exit)" "$CRASH_SECONDS"
	[[ -z "${ACT_SECONDS:-}" ]] || printf '  %-36s %8ss\n' "act run" "$ACT_SECONDS"
	printf '  %-36s %8ss\n' "total ($MODE)" "$(since "$T0")"
	echo
	echo "container-test: $PASSES passed, $FAILURES failed"
	((FAILURES == 0))
}

cd "$ROOT"
main
