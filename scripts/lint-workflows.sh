#!/usr/bin/env bash
# Lints every example workflow with actionlint against this checkout's
# action.yml, so a renamed or misspelled input in an example fails CI.
#
# The examples say `uses: immune-cd/immune@v1`, as users write it; actionlint
# cannot read a remote action, so each example is copied into a scratch
# repository whose root holds our action.yml, with that line turned into
# `uses: ./`. The release workflow is linted where it is.
#
# Usage: scripts/lint-workflows.sh [ACTIONLINT]   (default: actionlint on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
actionlint=${1:-actionlint}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/.github/workflows"
cp action.yml Dockerfile "$scratch/"
for wf in testdata/workflows/*.yml; do
  sed 's#uses: immune-cd/immune@v1#uses: ./#' "$wf" > "$scratch/.github/workflows/$(basename "$wf")"
done
cp .github/workflows/*.yml "$scratch/.github/workflows/"
cd "$scratch"
git init -q .
"$actionlint" -no-color
echo "actionlint: $(ls .github/workflows | wc -l) workflows pass"
