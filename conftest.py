"""Repository-level conftest: the plugin's own tests use pytester (see pyproject addopts)."""
