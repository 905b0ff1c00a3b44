"""Engines: the only code that runs a model. Tasks reach a model through the three calls of
:class:`pytest_kick.engines.base.Engine`; nothing else in the plugin calls a model's forward."""
