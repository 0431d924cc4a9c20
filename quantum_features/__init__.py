"""Orbital features from cheap PySCF calculations and equivariant property models."""
