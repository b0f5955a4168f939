"""Bench-only settings: the production settings plus what the platform benchmarks need and
production must not ship: the bare view's URLconf (bench/bare_urls.py) and two trivial task kinds
(bench/kinds.py). DJANGO_SETTINGS_MODULE=bench.settings selects them."""

from mediacraft.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.kinds.BenchKindsConfig"]  # noqa: F405
ROOT_URLCONF = "bench.bare_urls"
