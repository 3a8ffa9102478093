"""Physical parameters of open clusters: distance, age, extinction, structure, mass."""
