"""Model registry (aliases -> sources), loading, device placement."""
