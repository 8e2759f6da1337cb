#!/usr/bin/env python3
"""Fails if a locked dependency of the library needs a newer Rust than ours.

Reads `cargo metadata` (every feature, every platform, the lockfile as it is)
and walks the library's dependencies from the crate: normal and build edges,
not the crate's dev-dependencies, which build only its own tests, examples
and benches (proptest, tonic, criterion and rcgen there need 1.86-1.90; a
contributor builds those with the current toolchain). Each package that
declares a `rust-version` above the crate's is printed with the chain that
pulls it in; the exit status is 1 if there is any.

Clippy's `incompatible_msrv` covers the other half: the crate's own use of
the standard library (see .ci/run).
"""

import json
import subprocess
import sys


def version(text):
    """`1.85` and `1.85.0` as comparable tuples."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def too_new(metadata):
    """(package, its rust-version, chain) for each library dependency that
    needs a newer Rust than the root package declares."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = metadata["resolve"]["root"]
    ours = packages[root].get("rust_version")
    if not ours:
        sys.exit("Cargo.toml declares no rust-version")
    parent, stack = {}, [root]
    while stack:
        node = stack.pop()
        for dep in nodes[node]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if node == root and kinds <= {"dev"}:
                continue
            if dep["pkg"] not in parent:
                parent[dep["pkg"]] = node
                stack.append(dep["pkg"])
    found = []
    for pkg in parent:
        needs = packages[pkg].get("rust_version")
        if needs and version(needs) > version(ours):
            chain, at = [], pkg
            while at != root:
                chain.append(packages[at]["name"])
                at = parent[at]
            found.append((packages[pkg], needs, " <- ".join(chain)))
    return ours, len(parent), sorted(found, key=lambda f: f[2])


def main():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ours, count, found = too_new(json.loads(out))
    for package, needs, chain in found:
        print(f"{package['name']} {package['version']} needs Rust {needs} > {ours}: {chain}")
    if found:
        print(
            "lower them in Cargo.lock, e.g. "
            "CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo update -p NAME"
        )
        return 1
    print(f"{count} locked library dependencies, none needs Rust above {ours}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
