"""The bench settings' URLconf: production's, plus the bare submit view the submit-latency
benchmark compares POST /api/tasks/ with. Never part of the production URLconf."""

import json

from django.db import transaction
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from mediacraft.urls import handler404, handler500, urlpatterns as production  # noqa: F401

BARE_QUEUE = "bench_bare"


@csrf_exempt
def bare_submit(request):
    """The least a submit can do: parse the JSON body, insert a task row, enqueue a raw RQ job."""
    from rq import Queue

    from tasks.models import Task
    from tasks.queues import redis_connection

    body = json.loads(request.body)
    with transaction.atomic():
        task = Task.objects.create(owner_id=body["owner"], kind=body["kind"], params=body["params"], timeout=60,
                                   status=Task.Status.QUEUED)
    Queue(BARE_QUEUE, connection=redis_connection()).enqueue("bench.trivial.trivial", 0, job_id=str(task.pk))
    return JsonResponse({"task_id": str(task.pk)}, status=201)


urlpatterns = [path("bench/bare-submit/", bare_submit), *production]
