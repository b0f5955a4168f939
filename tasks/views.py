from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """Database, Redis and live workers: 200 when all are fine, 503 naming what is wrong."""
    from tasks.queues import redis_connection
    from tasks.selectors import live_worker_count

    checks, problems = {}, []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = "error"
        problems.append(f"database: {exc}")
    try:
        conn = redis_connection()
        conn.ping()
        checks["redis"] = "ok"
        checks["workers"] = live_worker_count(connection=conn)
        if not checks["workers"]:
            problems.append("workers: none alive")
    except Exception as exc:
        checks["redis"] = "error"
        checks["workers"] = 0
        problems.append(f"redis: {exc}")
    return JsonResponse({"status": "ok" if not problems else "error", "checks": checks, "problems": problems},
                        status=200 if not problems else 503)


def metrics(request):
    """Prometheus exposition: for staff sessions, or `Authorization: Bearer $MEDIACRAFT_METRICS_TOKEN`."""
    import hmac

    from django.conf import settings
    from django.http import HttpResponse

    from tasks.metrics import render

    token = settings.MEDIACRAFT_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    allowed = (request.user.is_authenticated and request.user.is_staff) or (
        bool(token) and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
    )
    if not allowed:
        response = HttpResponse("metrics need a staff session or the metrics token\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(render(), content_type="text/plain; version=0.0.4; charset=utf-8")
