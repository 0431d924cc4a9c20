"""Chemistry backbone: parsing, standardisation, conformers, descriptors, similarity, docking.

The most used entry points are re-exported here; each submodule documents its own API.
"""

from molops.errors import ChemToolkitError, MoleculeError
from molops.io import read_molecules, to_mol, write_molecules

__version__ = "0.1.0"
__all__ = ["ChemToolkitError", "MoleculeError", "read_molecules", "to_mol", "write_molecules", "__version__"]
