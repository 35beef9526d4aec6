from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from django_stomp_push import push_to_user


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html", {"session_age": request.session.get_expiry_age()})


@login_required
@require_POST
def notify(request: HttpRequest) -> JsonResponse:
    """Push a notification to every open tab of the signed-in user."""
    text = request.POST.get("text") or "Hello from the server"
    push_to_user(request.user, "/queue/notices", {"text": text})
    return JsonResponse({"sent": True})
