"""The admin machine of an end-to-end test whose hosts live in network namespaces of their own.

    python -m tests.e2e.admin DIR MODE OUTCOME  # run inside the admin's namespace (`ip netns exec`)

Applies (`up`), previews or destroys the stack pickled in DIR/config.pickle with the offline
engine, as `python -m offline` would, its state kept in DIR/state.json and local files under
DIR/local; every SSH connection, the confirmations' included, starts from this process's network
namespace. What happened goes to the file OUTCOME (JSON): the error, the exports, the engine's steps
and the executor's log of every command.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

from offline.cli import describe, run
from offline.engine import Step
from offline.executor import Executor


def main(argv: list[str]) -> int:
    directory, mode, outcome_file = Path(argv[0]), argv[1], Path(argv[2])
    config = pickle.loads((directory / "config.pickle").read_bytes())
    (directory / "local").mkdir(exist_ok=True)
    executor = Executor(local_dir=directory / "local")

    def progress(step: Step) -> None:
        print(f"{describe(step)}  {step.seconds:.1f}s{'  FAILED' if step.error else ''}", flush=True)

    try:
        outcome = run(config, directory / "state.json", mode=mode, executor=executor, on_step=progress)
    finally:
        executor.close()
    record = {
        "error": str(outcome.error) if outcome.error else None,
        "exports": outcome.run.exports if outcome.run else {},
        "steps": [{"name": s.name, "action": s.action.value, "ran": s.ran, "error": s.error, "seconds": s.seconds}
                  for s in outcome.engine.steps],
        "log": [{"name": entry.name, "exit_status": entry.exit_status, "seconds": entry.seconds,
                 "stdout": entry.stdout, "stderr": entry.stderr} for entry in executor.log],
    }
    outcome_file.write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
