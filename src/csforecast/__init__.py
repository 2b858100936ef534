"""csforecast: numbers a CS leader can trust."""
__version__ = "0.1.0"
