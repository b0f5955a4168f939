from django.conf import settings


class SecureCookiesOnHttpsMiddleware:
    """Mark the session and CSRF cookies Secure whenever the request came over HTTPS."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["secure"] = True
        return response


class RefusedVisitorMiddleware:
    """A write that a brand-new visitor makes and the server refuses or fails (any 4xx or 5xx)
    leaves no visitor behind: the identity was created before the uploads could be checked
    (they need an owner), so it is removed again here, for every view at once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code >= 400:
            from users.services import visitor_discard_new

            visitor_discard_new(request)
        return response
