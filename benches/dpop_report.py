#!/usr/bin/env python3
"""Runs the issue-23 measurements (`benches/dpop.rs`: one DPoP proof per
algorithm, and a request with a proof next to the bearer hot path and
tower-http's `AddAuthorization`, in one run) and writes their section of
BENCHMARKS.md, between the `dpop:begin` and `dpop:end` markers, leaving the
rest of the file as it is.

    python3 benches/dpop_report.py run   # the bench and callgrind (~3 min on 2 cores), then write
    python3 benches/dpop_report.py       # only rewrite the section from stored results

Raw outputs are kept under target/bench-report-dpop/. The bearer path's
instruction count before DPoP is the one measured the same way on the last
commit without it; the count now comes from this run.
"""

import json
import os
import shutil
import sys
import time

from bench_report import (CRITERION_ARGS, ROOT, criterion_estimates, finish_run,
                          instructions_per_call, loadavg, newest_bench_binary, sh, stored_run)
from peers_report import ns, splice

OUT = os.path.join(ROOT, "target", "bench-report-dpop")
TMP = OUT + ".tmp"
BEGIN, END = "<!-- dpop:begin -->", "<!-- dpop:end -->"
ALGORITHMS = [
    ("es256", "ES256 (P-256)"),
    ("eddsa", "EdDSA (Ed25519)"),
    ("rs256_2048", "RS256 (RSA 2048)"),
    ("ps256_2048", "PS256 (RSA 2048)"),
]
# `BearerAuth`'s default and `AddAuthorization` on the standard request,
# callgrind, on commit 8792df8 (the performance work before DPoP merged), as
# section 8 measures them. Compared over the floor of the same binary: the
# floor itself moves by a few dozen instructions between binaries.
BEARER_BEFORE_DPOP = 2613
FLOOR_BEFORE_DPOP = 1547
# The requests counted by callgrind: the floor, the bearer path, one proof.
COUNTED = ["add_authorization", "bearer_auth", "dpop_es256"]


def run():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    env = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg": {}}
    sh(["cargo", "bench", "--no-run", "--bench", "dpop", "--features", "jwt"])
    before = loadavg()
    sh(["cargo", "bench", "--bench", "dpop", "--features", "jwt", "--"] + CRITERION_ARGS)
    env["loadavg"]["dpop"] = [before, loadavg()]
    results = {f"{g}|{f}": v for (g, f, _), v in criterion_estimates("dpop/").items()}
    with open(os.path.join(TMP, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    finish_run(TMP, OUT, env, callgrind)


def callgrind():
    """Instructions per request: deterministic, unlike the wall clock."""
    binary = newest_bench_binary("dpop")
    return {
        fn: instructions_per_call(binary, f"dpop/request/{fn}$",
                                  os.path.join(TMP, f"callgrind-{fn}.out"), "dpop::common::send")
        for fn in COUNTED
    }


def section():
    results, env = stored_run(OUT)
    if results is None:
        return f"{BEGIN}\n_`benches/dpop_report.py run` not run_\n{END}\n"
    load = ", ".join(f"{a} → {b}" for a, b in env["loadavg"].values())
    out = [BEGIN, "## 9. What DPoP adds (issue 23)", "",
           f"One run of `python3 benches/dpop_report.py run` (started {env['started']}), on the "
           f"machine above; load average before → after: {load}. `benches/dpop.rs`: a proof is "
           "what `oauth2::DpopKey` makes for each request (a new `jti`, `ath` of the token, the "
           "origin's nonce, the signature); a DPoP request is the standard request of section 8 "
           "through `BearerAuth` whose cached token is bound to the key.", "",
           "**One proof** (`dpop/proof`):", "",
           "| algorithm | mean [95% CI] |", "| --- | --- |"]
    for fn, name in ALGORITHMS:
        r = results.get(f"dpop/proof|{fn}")
        if r:
            out.append(f"| {name} | {ns(r['mean'])} [{ns(r['lo'])} – {ns(r['hi'])}] |")
    floor = results.get("dpop/request|add_authorization")
    counts = env.get("callgrind", {})
    out += ["", "**A request** (`dpop/request`; instructions by callgrind where counted):", "",
            "| service | mean [95% CI] | vs `AddAuthorization` | instructions |",
            "| --- | --- | --- | --- |"]
    rows = [("add_authorization", "tower-http `AddAuthorization` (floor)"),
            ("bearer_auth", "`BearerAuth`, a bearer token")]
    rows += [(f"dpop_{fn}", f"`BearerAuth`, DPoP-bound, {name}") for fn, name in ALGORITHMS]
    for fn, name in rows:
        r = results.get(f"dpop/request|{fn}")
        if not r:
            continue
        ratio = f"{r['mean'] / floor['mean']:.2f}×" if floor else "—"
        count = f"{counts[fn]:,}" if counts.get(fn) else "—"
        out.append(f"| {name} | {ns(r['mean'])} [{ns(r['lo'])} – {ns(r['hi'])}] | {ratio} | {count} |")
    bearer, floor_count = counts.get("bearer_auth"), counts.get("add_authorization")
    if bearer and floor_count:
        now = bearer - floor_count
        before = BEARER_BEFORE_DPOP - FLOOR_BEFORE_DPOP
        extra = now - before
        out += ["", f"**The bearer path** (issue 23: its instruction count unchanged): "
                f"{now:,} instructions over `AddAuthorization`'s a request now ({bearer:,} − "
                f"{floor_count:,}), {before:,} before DPoP merged ({BEARER_BEFORE_DPOP:,} − "
                f"{FLOOR_BEFORE_DPOP:,}, commit 8792df8, counted the same way): {extra:+,} "
                f"({extra / BEARER_BEFORE_DPOP:+.1%} of the request), "
                + ("**met**." if extra <= 0 else
                   "**not met**. A bearer request makes no proof and allocates nothing more; "
                   "what it pays is the checks that its token is not bound (the cached token's "
                   "key, the attached proof's state, the judge's settings), each a test of an "
                   "empty pointer, and the larger values that carry them.")]
    out += ["", END]
    return "\n".join(out) + "\n"


def write():
    path = os.path.join(ROOT, "BENCHMARKS.md")
    with open(path) as f:
        doc = f.read()
    doc = splice(doc, BEGIN, END, section(), after="<!-- peers:end -->")
    with open(path, "w") as f:
        f.write(doc)
    print("wrote the DPoP section of BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run()
    write()
