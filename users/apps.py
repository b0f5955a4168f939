from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UsersConfig(AppConfig):
    name = "users"
    verbose_name = _("Visitors and accounts")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from users import throttle

        user_login_failed.connect(throttle.record_failure, dispatch_uid="mediacraft-login-failed")
        user_logged_in.connect(throttle.forget_failures, dispatch_uid="mediacraft-logged-in")
