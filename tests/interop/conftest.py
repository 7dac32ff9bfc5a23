"""HGQ2 runs on the torch backend in these tests (set before Keras is first imported)."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
