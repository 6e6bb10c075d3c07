"""gnothi: ask a language model about its own insides, and get answers backed by measurements."""

__version__ = "0.1.0"
