// Package containertest tests immune as its users get it: the image built
// from the unchanged Dockerfile, run the way GitHub's runner runs a container
// action, and the release workflow that pushes it prebuilt and pins it by
// digest in the release commit's action.yml.
//
// The container test proper needs root, buildah, podman and a local registry,
// and is behind a build tag (CI runs it from .ci/run):
//
//	go test -tags containertest -count=1 -timeout 30m -v ./internal/containertest -args [-cold] [-startup] [-keep]
//
// It keeps its images in a storage of its own (-storage, default
// /var/lib/containers/immune-container-test) and its cache in
// .ci/cache/container-test; -cold starts from nothing, -startup adds the
// start-up benchmark (prebuilt vs built from the Dockerfile).
//
// Without the tag, `go test ./...` runs only the release workflow's scripts
// against local git repositories (no containers).
package containertest
