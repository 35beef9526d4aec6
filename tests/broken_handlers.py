"""A handler module whose own import fails (a dependency that is not installed): check stomp_push.E007 names it."""

import django_stomp_push_tests_missing_dependency  # noqa: F401
