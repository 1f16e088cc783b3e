"""The management commands of `sma`, one module per command group."""
