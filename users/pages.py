"""The account page: claim the visitor account, log in and out, API tokens, language."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from storage.selectors import storage_usage
from tasks.errors import ApiError
from tasks.pages import csp, page_context
from users import services
from users.models import ApiToken


class ClaimForm(forms.Form):
    username = forms.CharField(label=gettext_lazy("Username"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}))
    password = forms.CharField(label=gettext_lazy("Password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text=gettext_lazy("At least 8 characters; not only digits, not a common password."))
    password2 = forms.CharField(label=gettext_lazy("Password again"), strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("password2") and cleaned["password"] != cleaned["password2"]:
            self.add_error("password2", _("The two passwords differ."))
        return cleaned


class LoginForm(forms.Form):
    username = forms.CharField(label=gettext_lazy("Username"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}))
    password = forms.CharField(label=gettext_lazy("Password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Token name"), max_length=100, required=False,
                           help_text=gettext_lazy("So you can tell your tokens apart, e.g. “backup script”."))


FIELD_BY_CODE = {"invalid_username": "username", "username_taken": "username", "invalid_password": "password"}


def _render(request, status=200, **context):
    user = request.user if request.user.is_authenticated else None
    context.setdefault("claim_form", ClaimForm(prefix="claim"))
    context.setdefault("login_form", LoginForm(prefix="login"))
    context.setdefault("token_form", TokenForm(prefix="token"))
    return render(request, "users/account.html", page_context(
        request, account=user, is_visitor=bool(user and services.is_visitor(user)),
        claimed=bool(user and user.has_usable_password()),
        tokens=list(ApiToken.objects.filter(user=user)) if user else [], storage=storage_usage(user=user),
        result_days=settings.MEDIACRAFT_RESULT_TTL_DAYS, nav="account", live=True,
        lang_next=reverse("account"),
        **context,
    ), status=status)


def _apply_error(form, exc):
    form.add_error(exc.extra.get("field") or FIELD_BY_CODE.get(exc.code), str(exc.message))


NEW_TOKEN_KEY = "mediacraft.new_token"


@csp
@require_GET
def account(request):
    # A token just created is shown on this one page after the redirect, then never again.
    raw = request.session.pop(NEW_TOKEN_KEY, None)
    if raw is None:
        return _render(request)
    response = _render(request, new_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@csp
@require_POST
def account_claim(request):
    form = ClaimForm(request.POST, prefix="claim")
    if form.is_valid():
        try:
            services.account_claim(request=request, username=form.cleaned_data["username"],
                                   password=form.cleaned_data["password"])
        except ApiError as exc:
            _apply_error(form, exc)
        else:
            messages.success(request, _("Your account is claimed: log in with this username and password from any browser."))
            return redirect("account")
    return _render(request, status=400, claim_form=form)


@csp
@require_POST
def account_login(request):
    form = LoginForm(request.POST, prefix="login")
    if form.is_valid():
        try:
            services.account_login(request=request, username=form.cleaned_data["username"],
                                   password=form.cleaned_data["password"])
        except ApiError as exc:
            _apply_error(form, exc)
        else:
            messages.success(request, _("Welcome back, %(name)s.") % {"name": request.user.get_username()})
            return redirect("task_list")
    return _render(request, status=400, login_form=form)


@require_POST
def account_logout(request):
    try:
        services.account_logout(request=request)
    except ApiError as exc:
        messages.error(request, str(exc.message))
        return redirect("account")
    messages.success(request, _("You are logged out."))
    return redirect("account")


@csp
@require_POST
def token_create(request):
    form = TokenForm(request.POST, prefix="token")
    if form.is_valid():
        try:
            _token, raw = services.token_create(user=services.visitor_ensure(request), name=form.cleaned_data["name"])
        except ApiError as exc:
            _apply_error(form, exc)
        else:
            # Redirected, so a reload cannot create another; the raw token waits in the session
            # for the next page only.
            request.session[NEW_TOKEN_KEY] = raw
            return redirect(reverse("account") + "#tokens")
    return _render(request, status=400, token_form=form)


@require_POST
def token_revoke(request, token_id):
    if request.user.is_authenticated:
        try:
            services.token_revoke(user=request.user, token_id=token_id)
            messages.success(request, _("Token revoked."))
        except ApiError as exc:
            messages.error(request, str(exc.message))
    return redirect(reverse("account") + "#tokens")
