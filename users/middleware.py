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
