"""`python -m bench`: run the benchmark, print the table, write the JSON results."""

from __future__ import annotations

import json
import signal
import sys

from bench.config import parse
from bench.database import BenchError
from bench.report import table
from bench.run import execute, log


def main() -> int:
    # Started from a background job, this process may have SIGINT ignored, which every server it starts
    # would inherit; the servers are stopped with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config = parse(sys.argv[1:])
    try:
        results = execute(config)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs = results.pop("logs")
    print()
    print(table(results))
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text(json.dumps(results, indent=2) + "\n")
    log(f"finished in {results['seconds']:.0f} s; results in {config.output}, server logs and the raw profile in {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
