from django.apps import AppConfig


class GovsiteConfig(AppConfig):
    name = "govsite"
    verbose_name = "govsite"

    def ready(self):
        from govsite import security  # noqa: F401  (connects the login audit receivers)
