"""DAG-parse cost: extra import time of the provider's operators and sensors over ``airflow.sdk``.

Every sample is a fresh interpreter that imports ``airflow.sdk`` (the baseline every DAG file
pays), then one target module, and reports both times. Targets are measured round-robin in the
same run (rotating the order each round, so background load hits them alike), one warm-up run
each is discarded (it fills the bytecode cache), and the medians are compared with the import cost
of ``airflow.providers.dbt.cloud.operators.dbt``. Bytecode is cached (in a temporary
PYTHONPYCACHEPREFIX) for all modules alike, as in a deployment. A ``python -X importtime``
pass then lists the heaviest modules each target pulls in beyond ``airflow.sdk``.

Needs a virtualenv with Airflow, this package and apache-airflow-providers-dbt-cloud (see
benchmarks/README.md; default ``.venv/bench``). Prints figures; never asserts on timings.

    python benchmarks/parse_cost.py --runs 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"

OURS = [
    "airflow_provider_posthog_bx.operators",
    "airflow_provider_posthog_bx.sensors",
    "airflow_provider_posthog_bx.operators+airflow_provider_posthog_bx.sensors",
]
DBT = "airflow.providers.dbt.cloud.operators.dbt"

CHILD = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = set(sys.modules)
for name in sys.argv[1].split("+"):
    importlib.import_module(name)
t2 = time.perf_counter()
print(json.dumps({"sdk": t1 - t0, "extra": t2 - t1, "modules": len(set(sys.modules) - before)}))
"""

IMPORTTIME = r"""
import importlib, sys
import airflow.sdk
sys.stderr.write("--- target ---\n")
for name in sys.argv[1].split("+"):
    importlib.import_module(name)
"""


def child_env(home: str) -> dict[str, str]:
    """A throwaway Airflow home, and bytecode caches in it for every module (ours and
    site-packages alike): a deployment parses DAGs with warm .pyc files, and a stale or missing
    __pycache__ in this checkout (or PYTHONDONTWRITEBYTECODE) would charge compile time to our
    editable install only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **env,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPYCACHEPREFIX": os.path.join(home, "pycache"),
    }


def sample(python: str, target: str, env: dict[str, str]) -> dict[str, float] | None:
    proc = subprocess.run(
        [python, "-c", CHILD, target], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  ! {target}: {last}")
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def heaviest(python: str, target: str, env: dict[str, str], top: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of the top imports ``target`` adds beyond airflow.sdk."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", IMPORTTIME, target],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _, _, after = proc.stderr.partition("--- target ---\n")
    rows: list[tuple[int, int, str]] = []
    for line in after.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue
        rows.append((cum_us, self_us, parts[2].rstrip()))
    # Top-level entries (least indented) are what the target imports directly or first.
    rows.sort(reverse=True)
    return rows[:top]


def uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=str(DEFAULT_PYTHON), help="interpreter to measure")
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per target")
    parser.add_argument("--quick", action="store_true", help="5 runs per target")
    parser.add_argument("--top", type=int, default=8, help="heaviest imports to list per target")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    if not Path(args.python).exists():
        raise SystemExit(
            f"{args.python} not found: build it as benchmarks/README.md says (.venv/bench)"
        )

    targets = [*OURS, DBT]
    load_before = uptime()
    with tempfile.TemporaryDirectory() as home:
        env = child_env(home)
        available = []
        for target in targets:  # warm-up: compiles bytecode, writes airflow.cfg; discarded
            if sample(args.python, target, env) is not None:
                available.append(target)
            else:
                print(f"  ! {target} is not importable: left out")
        results: dict[str, list[dict[str, float]]] = {t: [] for t in available}
        for i in range(runs):
            order = available[i % len(available) :] + available[: i % len(available)]
            for target in order:
                got = sample(args.python, target, env)
                if got is not None:
                    results[target].append(got)
        heavy = {t: heaviest(args.python, t, env, args.top) for t in available}
    load_after = uptime()

    version = subprocess.run(
        [args.python, "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW_HOME": tempfile.gettempdir()},
    ).stdout.strip()
    print(f"interpreter: {args.python} (Airflow {version})")
    print(f"fresh interpreters per target: {runs} (+1 warm-up discarded), round-robin")
    print(f"load average before / after: {load_before} / {load_after}")
    sdk = [r["sdk"] for rs in results.values() for r in rs]
    print(f"import airflow.sdk: median {statistics.median(sdk):.3f} s over {len(sdk)} runs")
    print()
    print(f"{'extra import over airflow.sdk':<78} {'median':>8} {'min':>7} {'max':>7} {'mods':>5}")
    medians: dict[str, float] = {}
    for target, rs in results.items():
        extra = [r["extra"] for r in rs]
        medians[target] = statistics.median(extra)
        print(
            f"{target:<78} {medians[target] * 1000:6.0f}ms {min(extra) * 1000:5.0f}ms "
            f"{max(extra) * 1000:5.0f}ms {int(statistics.median(r['modules'] for r in rs)):5d}"
        )
    print()
    if DBT in medians and medians[DBT] > 0:
        for target in OURS:
            if target in medians:
                ratio = medians[target] / medians[DBT]
                verdict = "met" if ratio <= 1 / 3 else "MISSED"
                print(f"ratio {target} / dbt-cloud: {ratio:.2f} (target <= 0.33: {verdict})")
    print()
    for target, rows in heavy.items():
        print(f"heaviest imports beyond airflow.sdk for {target} (cumulative / self, µs):")
        for cum_us, self_us, name in rows:
            print(f"  {cum_us:8d} {self_us:8d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
