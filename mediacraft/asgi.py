import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mediacraft.settings")
django_asgi_app = get_asgi_application()

from mediacraft.heap import freeze_startup  # noqa: E402
from mediacraft.routing import build_application  # noqa: E402  (needs Django set up)

application = build_application(django_asgi_app)
freeze_startup()
