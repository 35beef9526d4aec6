import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()  # sets Django up before the consumer is imported

from demo.ticker import with_ticker  # noqa: E402

from django_stomp_push.routing import stomp_application  # noqa: E402

application = with_ticker(stomp_application(http=django_http))
