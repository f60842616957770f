"""The ``runq`` command line."""
