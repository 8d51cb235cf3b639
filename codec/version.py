"""The toolkit's version (what ``codec --version`` prints and model files record)."""

__version__ = "0.1.0"
