# One recipe per CI step. `just ci` runs them all in the order `.ci/run` does;
# `.ci/run` adds the installs a fresh machine needs and is what CI executes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list --unsorted

# Every CI step, in CI order.
ci: fmt clippy test test-backoff doc benches

# Formatting check.
fmt:
    cargo fmt --all --check

# Lints, all targets and features, warnings are errors.
clippy:
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# All tests (interop tests install the pinned Node peers on first use).
test:
    cargo test --workspace

# connkit-core with the optional `backoff` crate interop.
test-backoff:
    cargo test -p connkit-core --features backoff

# API docs, warnings are errors.
doc:
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features
    RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps

# Benchmarks compile (CI does not run them).
benches:
    cargo check --workspace --benches

# Install the pinned Node peers by hand, where the test harness puts them.
node-peers:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="${CARGO_TARGET_DIR:-target}/interop-node"
    mkdir -p "$dir"
    cp tests/interop/node/package.json tests/interop/node/package-lock.json "$dir/"
    cd "$dir"
    # Same lock file the harness takes, so a test run cannot race this.
    if command -v flock >/dev/null; then
        flock .connkit-npm.lock npm ci --no-audit --no-fund --ignore-scripts
    else
        npm ci --no-audit --no-fund --ignore-scripts
    fi
    echo "installed into $(pwd)/node_modules"

# Node vs Rust side by side (JSTP tcp/unix/ws, IPC, raw socket limit); rewrites the table in
# docs/benchmarks.md and docs/benchmarks-throughput.svg. Takes about three minutes.
compare:
    cargo build --release -p connkit-cli
    cargo run --release --example compare
