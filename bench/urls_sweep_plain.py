"""URLs of the ``sweep`` benchmark's baseline project: the test project's, without the demo views (plugin-based)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
