
from django.http import JsonResponse
from django.utils.translation import gettext as _


class JsonApiErrorsMiddleware:
    """Under /api/, answer an unknown path or a wrong method in the API's error shape, not HTML."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.status_code not in (404, 405):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        if response.status_code == 404:
            code, message = "not_found", _("Not found.")
        else:
            code, message = "method_not_allowed", _("Method %(method)s is not allowed here.") % {"method": request.method}
        replacement = JsonResponse({"error": {"code": code, "message": message}}, status=response.status_code)
        if response.has_header("Allow"):
            replacement["Allow"] = response["Allow"]
        return replacement
