"""Shared molecules and helpers for the test suite (tiny, real molecules only)."""

from __future__ import annotations

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
GLYCINE_ZWITTERION = "[NH3+]CC(=O)[O-]"
METHYL_RADICAL = "[CH3]"
CISPLATIN = "Cl[Pt](Cl)(N)N"
ACETATE = "CC(=O)[O-]"


def embedded(smiles: str, seed: int = 7) -> Chem.Mol:
    """A molecule with explicit hydrogens and one MMFF-minimised 3D conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


@pytest.fixture
def aspirin_3d() -> Chem.Mol:
    return embedded(ASPIRIN)


#: Small molecules around a phenyl amide (the first has the lowest QED): the tiny generator's
#: training set and exemplar database.
GENERATOR_LIBRARY = ["CC(=O)Nc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(N)cc1", "CC(=O)Nc1ccc(Cl)cc1",
                     "CC(=O)Nc1ccc(C)cc1", "CCC(=O)Nc1ccccc1", "CC(=O)Nc1ccc(OC)cc1", "CC(=O)Nc1cccc(O)c1"]


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A RetMol generator (1+1-layer BART, d=32, identity fusion) trained for 300 steps on
    GENERATOR_LIBRARY: enough to decode valid, varied neighbours of the library (~20 s)."""
    from generation.fusion import RetrievalGenerator
    from generation.seq2seq import MoleculeSeq2Seq
    from generation.train_seq2seq import Seq2SeqTrainConfig, train_seq2seq

    out = tmp_path_factory.mktemp("tiny_generator")
    config = Seq2SeqTrainConfig(out_dir=str(out), batch_size=8, lr=3e-3, warmup_steps=10, max_steps=300,
                                mask_prob=0.0, random_smiles_prob=0.0, validate_every=300, threads=1, bf16=False,
                                model={"d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
                                       "attention_heads": 2, "ffn_dim": 64, "dropout": 0.0, "max_length": 32})
    train_seq2seq(config, GENERATOR_LIBRARY, GENERATOR_LIBRARY, progress=False)
    return RetrievalGenerator(MoleculeSeq2Seq.load(out / "best.pt")).eval()


def energy_derivative(model, data, atom: int, axis: int, step: float) -> float:
    """Central finite difference of ``model(data)["energy"][0]`` along one coordinate of one
    atom (Hartree/Å), with every other input (the orbital features too) held fixed."""
    import torch

    values = []
    for sign in (+1, -1):
        moved = data.clone()
        moved.pos[atom, axis] += sign * step
        with torch.no_grad():
            values.append(float(model(moved)["energy"][0]))
    return (values[0] - values[1]) / (2 * step)
