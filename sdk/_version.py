"""The version of edgeship (one place; pyproject.toml must match it)."""
__version__ = "0.1.0"
