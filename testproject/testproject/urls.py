from demo import views
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("", views.index, name="index"),
    path("notify/", views.notify, name="notify"),
    path("session/stay/", views.stay_signed_in, name="stay_signed_in"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]

# Static files (the page's JS and CSS, the stompjs bundle) under plain daphne too, not only runserver; DEBUG only.
urlpatterns += staticfiles_urlpatterns()
