"""`make loadtest`: locust, headless, against the running stack; CSV and an HTML report in loadtest/results/.

Settings come from the environment (make passes its variables through):

    LOADTEST_HOST          the gateway, host:port (default: `voice-agent up`'s, 127.0.0.1:$VOICE_GATEWAY_PORT or 50051)
    LOADTEST_USERS         concurrent users (4)
    LOADTEST_SPAWN_RATE    users started per second (1)
    LOADTEST_TIME          run time, locust's syntax: 60s, 5m (60s)
    LOADTEST_STOP_TIMEOUT  seconds the turns in flight get to finish at the end (30)
    LOADTEST_RESULTS       where the CSV files and report.html go (loadtest/results)

and the locustfile's own (LOADTEST_TURNS, LOADTEST_PAUSE_MIN_S, LOADTEST_PAUSE_MAX_S,
LOADTEST_TURN_TIMEOUT_S, LOADTEST_BARGE_IN, LOADTEST_TOKEN, LOADTEST_TLS, LOADTEST_TLS_CA).
Arguments are passed on to locust. Exits with locust's code: 1 when any turn failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from voice_agent.stack import is_serving

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    env = os.environ
    host = env.get("LOADTEST_HOST") or f"127.0.0.1:{env.get('VOICE_GATEWAY_PORT') or 50051}"
    results = Path(env.get("LOADTEST_RESULTS") or HERE / "results")
    plaintext = "://" not in host and env.get("LOADTEST_TLS", "").lower() not in {"1", "true", "yes", "on"}
    if plaintext and not is_serving(host, timeout_s=3.0):
        print(f"no gateway is serving on {host}: start the stack with `make up`, or set LOADTEST_HOST", file=sys.stderr)
        return 2
    results.mkdir(parents=True, exist_ok=True)
    command = [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"),
        *("--host", host),
        *("--users", env.get("LOADTEST_USERS") or "4"),
        *("--spawn-rate", env.get("LOADTEST_SPAWN_RATE") or "1"),
        *("--run-time", env.get("LOADTEST_TIME") or "60s"),
        *("--stop-timeout", env.get("LOADTEST_STOP_TIMEOUT") or "30"),
        *("--csv", str(results / "converse"), "--html", str(results / "report.html")),
        *("--exit-code-on-error", "1"),
        *argv,
    ]
    print("+", " ".join(command), flush=True)
    code = subprocess.run(command, check=False).returncode
    print(f"results: {results}/converse_stats.csv, converse_failures.csv, report.html (locust exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
