"""Teacher backends: one small async interface in `base`, one module per backend."""
