"""Pure array code: label vectors, scores and choices behind the ``Encoder`` protocol."""
