"""gnothi.agents."""
