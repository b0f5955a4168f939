"""The web process's heap once it has started."""

import gc


def freeze_startup():
    """Call once the ASGI application is built. What start-up made (settings, apps, models, the
    URLconf with the API's schemas: most of the process's objects) lives as long as the process.
    Frozen, it is left out of the garbage collector's full passes, each of which would otherwise
    walk all of it while every request in flight waits (about 45 ms on a 2-core machine, every
    few hundred requests; about 5 ms frozen). The URLconf is imported here, not by the first
    request, so that it is frozen too."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf)
    gc.collect()
    gc.freeze()
