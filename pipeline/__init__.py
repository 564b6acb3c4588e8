"""stnas library: data, language, losses, NAS engine, training and decoding.

The library never imports click; command-line wrappers live in ``steps_py``.
"""

__version__ = "0.1.0"
