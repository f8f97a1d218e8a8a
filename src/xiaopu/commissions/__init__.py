"""Commission lines: how each paid line is split, released, reversed and clawed back."""
