"""The project's single exception root."""


class CsforecastError(Exception):
    """Base of every csforecast error: a message safe to show to users, an exit code and an HTTP status."""

    exit_code = 2
    http_status = 400

    @property
    def user_message(self) -> str:
        return str(self)
