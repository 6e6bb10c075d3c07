"""gnothi.ui."""
