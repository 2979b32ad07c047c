"""The package's version, in a module of its own so that any module may name it without
importing the package (``__init__`` imports the extension, which imports almost everything)."""

__version__ = "0.1.0"
