"""A stand-in for an operator's command-line tool, driven by its arguments."""

import argparse
import json
import os
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--sleep", type=float, default=0.05)
parser.add_argument("--exit", type=int, default=0)
parser.add_argument("--stderr", default="")
parser.add_argument("--result", default='{"ok": true}')
parser.add_argument("--spawn-child", default="false")
parser.add_argument("--write", default="")
parser.add_argument("--echo", default=None)
args = parser.parse_args()

out = os.environ.get("MEDIACRAFT_OUTPUT_DIR", ".")
if args.spawn_child == "true":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(os.path.join(out, "child.pid"), "w") as f:
        f.write(str(child.pid))
if args.write:
    with open(os.path.join(out, args.write), "w") as f:
        f.write("partial output\n")
for i in range(1, args.steps + 1):
    time.sleep(args.sleep)
    print(f"PROGRESS {100 * i // (args.steps + 1)} step {i} of {args.steps}", flush=True)
if args.stderr:
    print(args.stderr, file=sys.stderr, flush=True)
if args.echo is not None:
    print(json.dumps({"echo": args.echo, "argv": sys.argv[1:]}), flush=True)
elif args.result:
    print(args.result, flush=True)
sys.exit(args.exit)
