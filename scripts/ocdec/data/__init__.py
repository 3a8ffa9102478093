"""Inputs: the regions catalogue, Gaia downloads (TAP), column readers, the quality gate and
simulated fields (Galactic model, stellar sequences, Gaia-like errors)."""
