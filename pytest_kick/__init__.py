"""pytest-kick: LLM-KICK, the knowledge-intensive benchmark for compressed LLMs, as a pytest plugin."""

__version__ = "0.1.0"
