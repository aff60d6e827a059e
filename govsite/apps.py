from pathlib import Path

from django.apps import AppConfig
from django.conf import settings

# The filesystem broker's transport options that name folders it reads and writes.
BROKER_FOLDER_OPTIONS = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")


def local_folders() -> list[Path]:
    """The folders the configured local state needs before first use: the SQLite
    database's (and its test database's), the filesystem broker's, STATIC_ROOT."""
    folders = []
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        for name in (database.get("NAME"), database.get("TEST", {}).get("NAME")):
            if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                folders.append(Path(name).parent)
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        folders += [Path(str(options[key])) for key in BROKER_FOLDER_OPTIONS if options.get(key)]
    # WhiteNoise warns about a missing STATIC_ROOT (collectstatic fills it).
    folders.append(Path(settings.STATIC_ROOT))
    return folders


def create_local_folders() -> None:
    for folder in local_folders():
        folder.mkdir(parents=True, exist_ok=True)


class GovsiteConfig(AppConfig):
    name = "govsite"
    verbose_name = "govsite"

    def ready(self):
        from govsite import security  # noqa: F401  (connects the login audit receivers)

        # At start-up (django.setup(): manage.py, gunicorn, the Celery worker and beat,
        # pytest), not at settings import: migrate needs SQLite's folder, the worker and
        # every producer the broker's.
        create_local_folders()
