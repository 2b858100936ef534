"""Scheduled training entry point: `python training/train.py --data DIR [--as-of YYYY-MM-DD] [--json]`.

Same as `csforecast train`: validates the source, trains every family, logs to MLflow and moves `champion`
only when the new version beats it."""
import sys

from csforecast.cli import app

if __name__ == "__main__":
    sys.exit(app(["train", *sys.argv[1:]]))
