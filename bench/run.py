"""`make bench`: run every bench/bench_*.py (or those named on the command line) and write
bench/RESULTS.md. Each benchmark prints a Markdown section to stdout; ratios are measured
against the raw tool or library in the same run."""

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(names):
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem in names or s.stem.removeprefix("bench_") in names]
    sections = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        sys.stderr.write(run.stderr[-4000:])
        if run.returncode != 0:
            sections.append(f"## {script.stem}\n\nFAILED (exit {run.returncode})\n")
        else:
            sections.append(run.stdout.strip() + "\n")
        print(sections[-1], flush=True)
    command = " ".join([".venv/bin/python bench/run.py", *names])
    header = (
        "# Benchmark results\n\n"
        f"Produced by `make bench` (`{command}`) on "
        f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Ratios compare MediaCraft with the raw tool in the same run.\n\n"
    )
    if not names:
        (HERE / "RESULTS.md").write_text(header + "\n".join(sections))
    else:
        print("(partial run: bench/RESULTS.md left as it was)")
    return 0 if all("FAILED" not in s for s in sections) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
