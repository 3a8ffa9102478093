"""Outputs: references, the comparison table, validation against published members, the
catalogue summary and the figures."""
