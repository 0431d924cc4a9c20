"""Molecule generation: retrieval-augmented transformer and language-guided editor."""
