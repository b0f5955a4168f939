"""Two task kinds for the platform benchmarks, registered only by bench.settings:
`bench_trivial` (does nothing but call bench.trivial.trivial) and `bench_progress` (reports
progress `count` times, `interval` seconds apart, with the wall-clock time of each report in
stats["sent_at"], so a viewer can time the event's way to its WebSocket)."""

import time

from django.apps import AppConfig

from bench.trivial import trivial
from tasks.processors import Processor


class TrivialProcessor(Processor):
    kind = "bench_trivial"
    spawns_tools = False
    max_attempts = 1

    def validate(self, *, params, files, user):
        return {"n": int(params.get("n", 0))}

    def run(self, ctx):
        return trivial(ctx.params["n"])


class ProgressProcessor(Processor):
    kind = "bench_progress"
    spawns_tools = False
    max_attempts = 1

    def validate(self, *, params, files, user):
        return {"count": int(params.get("count", 10)), "interval": float(params.get("interval", 0.2))}

    def run(self, ctx):
        count, interval = ctx.params["count"], ctx.params["interval"]
        ctx.progress(0, stage="running")
        for i in range(count):
            time.sleep(interval)
            ctx.progress(100 * i / count, stats={"sent_at": time.time()})
        return {}


class BenchKindsConfig(AppConfig):
    name = "bench"
    label = "bench"

    def ready(self):
        from tasks.processors import registry

        for processor in (TrivialProcessor(), ProgressProcessor()):
            registry()[processor.kind] = processor
