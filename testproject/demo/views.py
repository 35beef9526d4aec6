"""The demo's pages: the live page, and two small endpoints its buttons call."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from django_stomp_push import push_to_user
from django_stomp_push.conf import get_config

NOTICE_MAX_LENGTH = 200


@login_required
def index(request: HttpRequest) -> HttpResponse:
    context = {
        "session_age": request.session.get_expiry_age(),
        "expiry_notice": get_config().expiry_notice or 0,
        "session_destination": get_config().session_destination,
    }
    return render(request, "demo/index.html", context)


@login_required
@require_POST
def notify(request: HttpRequest) -> JsonResponse:
    """Push a notification to every open tab of the signed-in user."""
    text = (request.POST.get("text") or "").strip()[:NOTICE_MAX_LENGTH] or "Hello from the server"
    body = {"text": text, "tab": request.POST.get("tab", "")[:16], "at": timezone.now().isoformat()}
    push_to_user(request.user, "/queue/notices", body)
    return JsonResponse({"sent": True})


@require_POST
def stay_signed_in(request: HttpRequest) -> JsonResponse:
    """Extend the session by its full age (the "stay signed in" button).

    Marking the session modified makes SessionMiddleware save it with a new expiry date and send a fresh cookie.
    The open connections learn the new date when they next read the session store (at the old expiry at the
    latest) and tell their pages on the session destination; this tab uses the date in the response at once.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"error": "not signed in"}, status=401)
    request.session.modified = True
    expires_at = request.session.get_expiry_date()
    return JsonResponse({"expires_at": expires_at.isoformat(), "expires_ms": int(expires_at.timestamp() * 1000)})
