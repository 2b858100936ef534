"""`python -m csforecast.cli …`: the same as the `csforecast` command."""
from csforecast.cli import app

app()
