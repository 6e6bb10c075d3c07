"""gnothi.evals."""
