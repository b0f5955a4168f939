"""The demo tool behind the shipped `countdown` command template: counts down, reporting
progress in the PROGRESS protocol, and prints a JSON result. Harmless by design."""

import argparse
import json
import sys
import time
from datetime import datetime, timezone

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=int, default=10)
parser.add_argument("--fail-at", type=int, default=None, help="exit with an error at this second")
args = parser.parse_args()

for second in range(args.seconds):
    if args.fail_at is not None and second == args.fail_at:
        print(f"countdown: failing at {second} s as asked", file=sys.stderr, flush=True)
        sys.exit(2)
    # No text after the percentage: the page shows the time left (the engine's ETA) in the
    # viewer's language, which free text from a tool cannot be.
    print(f"PROGRESS {100 * second / args.seconds:.1f}", flush=True)
    time.sleep(1)
print(json.dumps({"counted": args.seconds, "finished_at": datetime.now(timezone.utc).isoformat()}), flush=True)
