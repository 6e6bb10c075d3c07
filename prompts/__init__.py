"""gnothi.prompts."""
