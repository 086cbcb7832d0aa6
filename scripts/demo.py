"""`make demo`: run the backfill example DAG end to end against a local PostHog emulator.

Starts the emulator (``python -m airflow_provider_posthog_bx.testing.emulator``), points the
``posthog_default`` connection and the ``posthog_batch_export_id`` variable at it, runs
``example_posthog_backfill`` over yesterday with ``airflow dags test`` (the backfill waits in
deferrable mode), prints the provider's progress lines and the final state, and stops the
emulator. Everything lives in a temporary Airflow home.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INTERESTING = re.compile(
    r"Backfilling|Started backfill|Adopting|Backfill [0-9a-f-]+|Queued|not visible|"
    r"completed:|ended|did not|DagRun Finished|Marking run|Task failed|Error"
)


def start_emulator(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = workdir / "emulator.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_posthog_bx.testing.emulator",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--backfill-create-delay",
            "1",
            "--backfill-starting-seconds",
            "1",
            "--run-seconds",
            "0.25",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the PostHog emulator did not start")
        time.sleep(0.1)
    time.sleep(0.1)  # let the writer finish the file
    return process, json.loads(ready.read_text())


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="posthog-bx-demo-"))
    emulator, info = start_emulator(workdir)
    try:
        print(
            f"PostHog emulator: {info['url']} (project {info['project_id']}, "
            f"batch export {info['batch_export_id']})",
            flush=True,
        )
        env = dict(
            os.environ,
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            AIRFLOW_HOME=str(workdir / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS="False",
            AIRFLOW_CONN_POSTHOG_DEFAULT=json.dumps(
                {
                    "conn_type": "posthog",
                    "host": info["url"],
                    "password": info["api_key"],
                    "extra": {"project_id": info["project_id"]},
                }
            ),
            AIRFLOW_VAR_POSTHOG_BATCH_EXPORT_ID=info["batch_export_id"],
        )
        airflow = str(BIN / "airflow")
        print("Migrating a throwaway Airflow metadata database ...", flush=True)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        today = date.today()
        conf = {"start_at": (today - timedelta(days=1)).isoformat(), "end_at": today.isoformat()}
        print(
            f"Running example_posthog_backfill (deferrable) to backfill {conf['start_at']} - "
            f"{conf['end_at']} ...\n",
            flush=True,
        )
        log_path = workdir / "dags-test.log"
        with open(log_path, "w") as log:
            run = subprocess.Popen(
                [airflow, "dags", "test", "example_posthog_backfill", "--conf", json.dumps(conf)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert run.stdout is not None
            for line in run.stdout:
                log.write(line)
                if INTERESTING.search(line) and (
                    "airflow_provider_posthog_bx" in line or "DagRun Finished" in line
                ):
                    print("  " + _short(line), flush=True)
            code = run.wait()
        state = re.findall(r"state=(\w+), run_type", log_path.read_text())
        final = state[-1] if state else "unknown"
        print(f"\nFinal DAG run state: {final}  (full log: {log_path})")
        return 0 if code == 0 and final == "success" else 1
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(10)
        except subprocess.TimeoutExpired:
            emulator.kill()
        print("PostHog emulator stopped.")
        if os.environ.get("KEEP_DEMO") is None:
            shutil.rmtree(workdir / "airflow", ignore_errors=True)


def _short(line: str) -> str:
    """Drop structlog's logger/location suffix so progress lines stay readable."""
    line = line.rstrip()
    line = re.sub(r"\s+\[airflow[^\]]*\]\s+loc=\S+.*$", "", line)
    return line


if __name__ == "__main__":
    sys.exit(main())
