"""ocdec's default method: peak search, error-aware mixture, DEC membership, seed ensemble."""
