"""The native protocol: sans-IO frames and typed messages."""
