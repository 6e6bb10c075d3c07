"""gnothi.ui.commands."""
