"""Run every benchmark of bench/ one after another: `make bench`.

    .venv/bin/python bench/run_all.py              # every bench/*.py that defines main()
    .venv/bin/python bench/run_all.py foundation   # only the ones named (file names, no .py)
    .venv/bin/python bench/run_all.py --list       # what would run

A benchmark is a script in bench/ with a top-level `def main()` (found by reading the source, so
nothing is imported here) and the usual `if __name__ == "__main__": sys.exit(main())`. Each runs
as its own process from the repository root, with its output shown as it comes, under a time
limit (BENCH_SCRIPT_TIMEOUT seconds, 1800 by default). This script holds /tmp/bench.lock for the
whole run and hands it down, so do not wrap it in `flock`; a bench that is already running
elsewhere makes it wait. Exit status: 0 when every benchmark exited 0 (met its targets).
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import bench_lock  # noqa: E402

NOT_BENCHMARKS = {"__init__", "harness", "echo_app", "run_all"}


def defines_main(path: pathlib.Path) -> bool:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError):
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def benchmarks(names: list[str] | None = None) -> list[pathlib.Path]:
    found = [path for path in sorted(BENCH.glob("*.py"))
             if path.stem not in NOT_BENCHMARKS and defines_main(path)]
    if not names:
        return found
    by_name = {path.stem: path for path in found}
    unknown = [name for name in names if name.removesuffix(".py") not in by_name]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; "
                         f"there are: {', '.join(by_name) or 'none'}")
    return [by_name[name.removesuffix(".py")] for name in names]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--list" in args:
        for path in benchmarks([a for a in args if a != "--list"]):
            print(path.relative_to(REPO))
        return 0
    scripts = benchmarks(args)
    if not scripts:
        print("no benchmark found in bench/")
        return 0
    limit = float(os.environ.get("BENCH_SCRIPT_TIMEOUT", "1800"))
    results: list[tuple[str, str, float]] = []
    with bench_lock() as fd:
        for path in scripts:
            name = str(path.relative_to(REPO))
            print(f"\n######## {name} ########", flush=True)
            started = time.monotonic()
            try:
                code = subprocess.run([sys.executable, str(path)], cwd=REPO, timeout=limit,
                                      pass_fds=() if fd is None else (fd,)).returncode
                outcome = "ok" if code == 0 else f"exit {code}"
            except subprocess.TimeoutExpired:
                outcome = f"killed after {limit:.0f} s"
            results.append((name, outcome, time.monotonic() - started))
    print("\n######## summary ########")
    for name, outcome, seconds in results:
        print(f"{name:<32} {outcome:<20} {seconds:7.0f} s")
    return 0 if all(outcome == "ok" for _, outcome, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
