"""Chemistry backbone: parsing, standardisation, conformers, descriptors, similarity, docking."""
