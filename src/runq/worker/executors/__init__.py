"""How one job runs, behind a small protocol."""
