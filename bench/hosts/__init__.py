"""The processes the bench starts: each a host (or a piece of work) run with ``-m``."""
