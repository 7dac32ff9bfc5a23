"""Bad-input corpus of the command line (cases.py) and the helpers it shares (helpers.py)."""
