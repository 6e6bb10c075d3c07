"""gnothi.tools."""
