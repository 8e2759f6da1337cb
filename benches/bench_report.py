"""What the benchmark report scripts (`report.py`, `keyed_report.py`) share:
running commands, the machine's load, criterion's estimates, callgrind's
instruction counts and the swap of a finished run into place.

Not a script itself; the report scripts import it.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion")
CRITERION_ARGS = ["--warm-up-time", "1", "--measurement-time", "3"]


def sh(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=True, **kw)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def criterion_estimates(group_prefix=""):
    """Criterion's latest estimates, by (group, function, value), of the groups
    whose name starts with `group_prefix`."""
    results = {}
    for path in glob.glob(os.path.join(CRITERION, "**", "new", "benchmark.json"), recursive=True):
        with open(path) as f:
            meta = json.load(f)
        if not meta["group_id"].startswith(group_prefix):
            continue
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            est = json.load(f)
        key = (meta["group_id"], meta["function_id"], meta.get("value_str"))
        mean = est["mean"]
        results[key] = {
            "mean": mean["point_estimate"],
            "lo": mean["confidence_interval"]["lower_bound"],
            "hi": mean["confidence_interval"]["upper_bound"],
            "median": est["median"]["point_estimate"],
        }
    return results


def newest_bench_binary(bench):
    """The most recently built executable of `cargo bench --bench <bench>`."""
    bins = [b for b in glob.glob(os.path.join(ROOT, "target", "release", "deps", bench + "-*"))
            if os.access(b, os.X_OK) and not b.endswith(".d")]
    return max(bins, key=os.path.getmtime)


def instructions_per_call(binary, bench_filter, out, function):
    """Runs the benchmarks of `binary` matching `bench_filter` under callgrind
    (profile in `out`) and returns the inclusive instructions per call of
    `function`: deterministic, unlike time on a shared machine."""
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary,
                    "--bench", "--profile-time", "1", bench_filter],
                   capture_output=True, check=True)
    text = subprocess.run(["callgrind_annotate", "--tree=caller", "--inclusive=yes", out],
                          capture_output=True, text=True, check=True).stdout
    return per_call(text, function)


def per_call(text, function):
    """Inclusive instructions per call of `function` in callgrind_annotate's caller tree."""
    calls = 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "*  ???:" + function + " " in line:
            total = int(line.split()[0].replace(",", ""))
            j = i - 1
            while j >= 0 and "<" in lines[j]:
                m = re.search(r"\(([\d,]+)x\)", lines[j])
                if m:
                    calls += int(m.group(1).replace(",", ""))
                j -= 1
            return round(total / calls) if calls else None
    return None


def stored_run(out):
    """The results and environment of the last finished run in `out`
    (`None` for each before any)."""
    def load(name):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)
    return load("results.json"), load("env.json")


def finish_run(tmp, out, env, callgrind):
    """Adds callgrind's counts (where valgrind is installed) and `env` to the
    run in `tmp`, then puts it in place of `out`: a stored run is always whole."""
    if shutil.which("valgrind"):
        env["callgrind"] = callgrind()
    with open(os.path.join(tmp, "env.json"), "w") as f:
        json.dump(env, f, indent=2)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
