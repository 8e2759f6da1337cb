#!/usr/bin/env python3
"""Runs the issue-10 measurements (the keyed cache) and writes their section of
BENCHMARKS.md, between the `keyed:begin` and `keyed:end` markers, leaving the
rest of the file as it is.

    python3 benches/keyed_report.py run   # bench + memory test (~3 min on 2 cores), then write
    python3 benches/keyed_report.py       # only rewrite the section from stored results

Every number comes from criterion's estimates of `benches/keyed.rs`, the lines
that bench prints (token requests at once) and the output of
`tests/keyed_memory.rs`; the raw outputs are kept under
target/bench-report-keyed/. `benches/report.py` includes this section when it
rewrites the whole file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from bench_report import (CRITERION_ARGS, ROOT, criterion_estimates, finish_run,
                          instructions_per_call, loadavg, newest_bench_binary, sh)

OUT = os.path.join(ROOT, "target", "bench-report-keyed")
TMP = OUT + ".tmp"
BEGIN, END = "<!-- keyed:begin -->", "<!-- keyed:end -->"
# Runs of the per-request groups; each function's fastest is kept.
FAST_RUNS = 3

HOT_PATH = [
    ("bare", "bare service"),
    ("add_authorization", "tower-http `AddAuthorization` (floor)"),
    ("bearer_auth", "`BearerAuth`, one token (`TokenCache`)"),
    ("bearer_auth_keyed", "`BearerAuth`, keyed: 10,000 keys, key from an extension"),
]


def criterion_results_by_name(prefix):
    """Criterion's estimates of the groups starting with `prefix`, by "group|function"."""
    return {f"{group}|{fn}": v for (group, fn, _), v in criterion_estimates(prefix).items()}


def run():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    env = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": {}}
    sh(["cargo", "bench", "--no-run", "--bench", "keyed"])
    best = {}
    # The per-request groups run several times and each function's fastest run
    # is kept: other work on a shared machine only ever adds time.
    for i in range(FAST_RUNS):
        before = loadavg()
        out = bench(["keyed/hot_path|keyed/lookup"], f"bench-fast-{i + 1}.txt")
        env["loadavg"][f"hot path #{i + 1}"] = [before, loadavg()]
        for key, value in criterion_results_by_name("keyed/").items():
            if key.split("|")[0] in ("keyed/hot_path", "keyed/lookup"):
                if key not in best or value["mean"] < best[key]["mean"]:
                    best[key] = value
    before = loadavg()
    bench(["keyed/cold_start"], "bench.txt")
    env["loadavg"]["cold start"] = [before, loadavg()]
    for key, value in criterion_results_by_name("keyed/cold_start").items():
        best[key] = value
    with open(os.path.join(TMP, "criterion-keyed.json"), "w") as f:
        json.dump(best, f, indent=2)
    before = loadavg()
    memory = subprocess.run(["cargo", "test", "--test", "keyed_memory", "--", "--nocapture"],
                            cwd=ROOT, capture_output=True, text=True)
    env["loadavg"]["memory"] = [before, loadavg()]
    with open(os.path.join(TMP, "memory.txt"), "w") as f:
        f.write(memory.stdout + memory.stderr)
    if memory.returncode != 0:
        sys.exit("the keyed memory test failed; see target/bench-report-keyed.tmp/memory.txt")
    env["fast_runs"] = FAST_RUNS
    finish_run(TMP, OUT, env, callgrind)


def callgrind():
    """Instructions per request through each service of `keyed/hot_path`:
    deterministic, unlike time on a shared machine."""
    binary = newest_bench_binary("keyed")
    counts = {}
    for fn, _ in HOT_PATH:
        out = os.path.join(TMP, f"callgrind-{fn}.out")
        counts[fn] = instructions_per_call(binary, f"keyed/hot_path/{fn}$", out,
                                           "keyed::common::send")
    return counts


def callgrind_table(env):
    cg = env.get("callgrind")
    if not cg or not all(cg.values()):
        return "_valgrind not installed; skipped_\n"
    bare, floor, single = cg["bare"], cg["add_authorization"], cg["bearer_auth"]
    out = ["| service | instructions per request | added to bare | vs `AddAuthorization` |",
           "| --- | --- | --- | --- |"]
    for fn, label in HOT_PATH:
        v = cg[fn]
        out.append(f"| {label} | {v} | {'—' if fn == 'bare' else f'+{v - bare}'} | "
                   f"{'—' if fn in ('bare', 'add_authorization') else f'+{v - floor}'} |")
    out.append("")
    out.append(f"The keyed layer executes {cg['bearer_auth_keyed'] - single:+d} instructions a "
               "request against the single-key layer: the key function, the hash, the lookup "
               "and the use bit.")
    return "\n".join(out) + "\n"


def bench(filters, name):
    """One `cargo bench --bench keyed` run of the groups matching `filters`."""
    cmd = ["cargo", "bench", "--bench", "keyed", "--"] + CRITERION_ARGS + filters
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    with open(os.path.join(TMP, name), "w") as f:
        f.write(res.stdout + res.stderr)
    if res.returncode != 0:
        sys.exit(f"the keyed bench failed; see target/bench-report-keyed.tmp/{name}")
    return res.stdout


def read(name):
    path = os.path.join(OUT, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f) if name.endswith(".json") else f.read()


def ns(x):
    if x >= 1e9:
        return f"{x / 1e9:.2f} s"
    if x >= 1e6:
        return f"{x / 1e6:.1f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.2f} µs"
    return f"{x:.1f} ns"


def ci(r):
    return f"{ns(r['mean'])} [{ns(r['lo'])} – {ns(r['hi'])}]"


def hot_path_table(res):
    rows = {fn: res.get("keyed/hot_path|" + fn) for fn, _ in HOT_PATH}
    if not all(rows.values()):
        return "_not run_\n"
    bare, floor = rows["bare"]["mean"], rows["add_authorization"]["mean"]
    out = ["| service | mean [95% CI] | added to bare | vs `AddAuthorization` |",
           "| --- | --- | --- | --- |"]
    for fn, label in HOT_PATH:
        m = rows[fn]["mean"]
        added = "—" if fn == "bare" else f"{m - bare:+.1f} ns"
        ratio = "—" if fn in ("bare", "add_authorization") else f"{m / floor:.3f}× ({(m / floor - 1) * 100:+.1f} %)"
        out.append(f"| {label} | {ci(rows[fn])} | {added} | {ratio} |")
    keyed, single = rows["bearer_auth_keyed"]["mean"], rows["bearer_auth"]["mean"]
    out.append("")
    out.append(f"Choosing the key's cache (reading the key from the request, hashing it, "
               f"the lock-free lookup among 10,000 keys, the use bit) costs "
               f"{keyed - single:+.1f} ns a request against the single-key layer "
               f"({(keyed / single - 1) * 100:+.1f} %).")
    return "\n".join(out) + "\n"


# The key counts of `benches/keyed.rs`'s `keyed/lookup` group.
LOOKUP_KEYS = [1, 1_000, 100_000]


def lookup_table(res):
    single = res.get("keyed/lookup|single_key_current")
    keyed = {n: res.get(f"keyed/lookup|keyed_current_of_{n}") for n in LOOKUP_KEYS}
    if not single or not all(keyed.values()):
        return "_not run_\n"
    held = {n: "1 key held" if n == 1 else f"{n:,} keys held, each call another key"
            for n in LOOKUP_KEYS}
    rows = [f"| `KeyedTokenCache::current(&key)`, {held[n]} | {ci(r)} | "
            f"{r['mean'] - single['mean']:+.1f} ns |" for n, r in keyed.items()]
    return "\n".join([
        "| call | mean [95% CI] | over `TokenCache::current()` |",
        "| --- | --- | --- |",
        f"| `TokenCache::current()` | {ci(single)} | — |",
        *rows,
    ]) + "\n"


def cold_start_table(res, bench):
    peaks = {int(m.group(1)): (int(m.group(2)), int(m.group(3)), int(m.group(4)))
             for m in re.finditer(r"keyed cold start: limit (\d+): (\d+) iterations of \d+ keys, "
                                  r"(\d+) token requests, at most (\d+) at once", bench or "")}
    out = ["| in-flight limit | time to serve all 10,000 keys: mean [95% CI] | token requests at once (most seen) | token requests |",
           "| --- | --- | --- | --- |"]
    for limit in (16, 64):
        r = res.get(f"keyed/cold_start|10000_keys_limit_{limit}")
        iterations, requests, peak = peaks.get(limit, (None, None, None))
        per = f"{requests // iterations:,} per run ({iterations} runs)" if iterations else "—"
        out.append(f"| {limit} | {ci(r) if r else '_not run_'} | {peak if peak is not None else '—'} | {per} |")
    m = re.search(r"the token endpoint served at most (\d+) requests at once", bench or "")
    if m:
        out.append("")
        out.append(f"The loopback endpoint itself counted at most {m.group(1)} token requests at once "
                   "over every run (it counts them as they arrive; the gate lets the next one go "
                   "when the previous response is read).")
    return "\n".join(out) + "\n"


def memory_line(text):
    m = re.search(r"keyed memory: (\d+) keys, (\d+) bytes per key without a token .*?, (\d+) more bytes "
                  r"per cached token \((\d+) byte token\), (\d+) bytes per key with its token, (\d+) tasks, "
                  r"(\d+) fetches in an idle hour", text or "")
    if not m:
        return "_not run_\n"
    keys, empty, token, size, total, tasks, fetches = m.groups()
    return "\n".join([
        "| keys | bytes per key, no token yet | bytes per key with its token | live tasks | fetches in an idle hour |",
        "| --- | --- | --- | --- | --- |",
        f"| {int(keys):,} | {empty} | {total} ({size}-byte token) | {tasks} | {fetches} |",
    ]) + "\n"


def section():
    res = read("criterion-keyed.json") or {}
    bench = read("bench.txt")
    memory = read("memory.txt")
    env = read("env.json") or {}
    la = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in env.get("loadavg", {}).items()) or "not recorded"
    return f"""{BEGIN}
## 7. Keyed cache: many tenants behind one client

One run of `python3 benches/keyed_report.py run` (started {env.get('started', 'unknown')}):
`benches/keyed.rs` and `tests/keyed_memory.rs`. The machine is the one above,
shared with other engineers' builds (load average before → after: {la});
the per-request groups ran {env.get('fast_runs', 1)} times and each row keeps
its fastest run, and the ratios within a group are the robust figures.

**Hot path**, one group (`keyed/hot_path`): the request of section 1 through
the bare service, `AddAuthorization`, the single-key layer and a layer on a
keyed cache holding 10,000 keys, whose key is read from a request extension
(a `Workspace(Arc<str>)`, cloned: a reference count).

{hot_path_table(res)}
**Instructions per request** (callgrind, the loop's `send`: call, poll and
drops, without building the request; deterministic, so load cannot blur it):

{callgrind_table(env)}
**The lookup alone** (`keyed/lookup`), without a request:

{lookup_table(res)}
**Cold start**: 10,000 keys asked for at once (one task each, a multi-thread
runtime) against the loopback Glue of `examples/keyed_per_workspace.rs`, which
takes 2 ms per token request, through an `EndpointGate` of 16 and of 64. The
time is what the limit buys: about 10,000 / limit × 2 ms plus the HTTP work;
the endpoint never sees more than the limit.

{cold_start_table(res, bench)}
**Memory at rest** (`tests/keyed_memory.rs`, a counting global allocator, the
test alone in its binary): what the cache allocates per key, its label (a
12-byte workspace id) included; keys are `Arc<str>` the application holds
anyway.

{memory_line(memory)}
No key has a task: a token's deadlines are read on use, refreshes start on
use, and eviction runs when a key is added.
{END}
"""


def write():
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    new = section()
    if BEGIN in doc and END in doc:
        start = doc.index(BEGIN)
        end = doc.index(END) + len(END) + 1
        doc = doc[:start] + new + doc[end:]
    else:
        doc = doc.rstrip("\n") + "\n\n" + new
    with open(path, "w") as f:
        f.write(doc)
    print("wrote the keyed section of BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run()
    write()
