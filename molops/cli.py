"""The ``molops`` command line: one Typer app, one verb per job.

Every verb takes a SMILES string or a molecule file (.smi/.csv/.sdf/.mol2/.pdb/.xyz) as
INPUT, writes ``--out FILE`` in the format its extension names (.csv/.parquet/.sdf/.smi) and
prints a table. Per-molecule failures are reported in an ``error`` column and counted; the
exit code is non-zero when the input cannot be read or no molecule succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from molops.errors import ChemToolkitError, InputFileError
from rdkit import Chem

from molops.io import READERS, mol_to_smiles, output_format, read_molecules, to_mol, write_molecules

app = typer.Typer(
    name="molops",
    help="Molecule operations: optimisation (RetMol), docking, descriptors, conformers, similarity search, orbital features, quantum-property prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

#: Short table headers for long column names.
HEADERS = {
    "molecular_weight_da": "MW (Da)", "clogp": "cLogP", "tpsa_a2": "TPSA (Å²)", "qed": "QED",
    "sa_score": "SA", "penalized_logp": "pen. logP", "passes_lipinski": "Ro5",
    "n_pains_alerts": "PAINS", "n_brenk_alerts": "Brenk", "relative_energy_kcal_mol": "ΔE (kcal/mol)",
    "energy_kcal_mol": "E (kcal/mol)", "conformer_id": "conf", "uncertainty_kcal_mol": "± (kcal/mol)",
    "mmff_relative_kcal_mol": "MMFF ΔE (kcal/mol)", "force_field": "FF",
    "energy_hartree": "E (Ha)", "homo_ev": "HOMO (eV)", "lumo_ev": "LUMO (eV)", "gap_ev": "gap (eV)",
    "gap_std_ev": "± gap", "dipole_debye": "μ (D)",
    "vina_score_kcal_mol": "Vina (kcal/mol)", "docked_smiles": "docked state", "similarity": "sim.",
}

InputArg = Annotated[str, typer.Argument(help="A SMILES string or a molecule file (.smi/.csv/.sdf/.mol2/.pdb/.xyz).")]


def _checked_out(path: Path | None) -> Path | None:
    """--out is checked before any work: a bad path must not cost a finished computation."""
    if path is None:
        return None
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file name such as {path / 'results.csv'}")
    try:
        output_format(path)
    except ChemToolkitError as exc:
        raise typer.BadParameter(str(exc)) from None
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise typer.BadParameter(f"{parent} is a file, so {path} cannot be created")
    return path


OutOption = Annotated[Optional[Path], typer.Option("--out", "-o", callback=_checked_out,
                                                   help="Output file; format from the extension (.csv/.parquet/.sdf/.smi).")]
SmilesColumn = Annotated[Optional[str], typer.Option("--smiles-column", help="SMILES column of a .csv/.tsv input.")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="On resume, compute again the rows that failed before.")]


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors.")] = False,
) -> None:
    """Molecule operations on the command line."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries such as dask.distributed set their own loggers to INFO; the handler's level
    # keeps their chatter out unless --verbose.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)


def _fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _looks_like_file(text: str) -> bool:
    if not text.strip():  # Path("") is the current folder, which exists
        return False
    name = text.lower().removesuffix(".gz")
    return Path(text).exists() or any(name.endswith(ext) for ext in READERS)


def load_input(value: str, smiles_column: str | None = None) -> pd.DataFrame:
    """Molecules of a CLI INPUT (a file path or one SMILES) as a `read_molecules` frame."""
    if _looks_like_file(value):
        frame = read_molecules(value, smiles_column=smiles_column)
        if frame.empty:
            raise InputFileError(f"{value}: no molecules (the file is empty or holds only a header)")
        return frame
    return pd.DataFrame({"smiles": [value], "mol": [to_mol(value)], "error": [None]})


def _label(record: dict) -> str:
    """How a CLI row names its input molecule: name, else SMILES, else record number."""
    for key in ("name", "smiles"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    return f"record {record.get('record')}"


def _print_table(frame: pd.DataFrame, columns: list[str], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    shown = [c for c in columns if c in frame.columns]
    for column in shown:
        table.add_column(HEADERS.get(column, column), overflow="fold")
    for row in frame[shown].itertuples(index=False):
        table.add_row(*("" if pd.isna(v) else f"{v:.3f}" if isinstance(v, float) else escape(str(v)) for v in row))
    console.print(table)


def _finish(frame: pd.DataFrame, out: Path | None, what: str) -> None:
    failed = int(frame["error"].notna().sum()) if "error" in frame.columns else 0
    if out is not None:
        write_molecules(frame, out)
        if output_format(out) in (".csv", ".parquet"):  # tables keep the failed rows with their error
            console.print(f"wrote {len(frame)} rows to {out}" + (f" ({failed} of them failed)" if failed else ""))
        else:  # molecule files hold only the molecules that succeeded
            console.print(f"wrote {len(frame) - failed} {what} to {out}")
    if failed:
        first = escape(str(frame["error"].dropna().iloc[0]))
        stderr.print(f"[yellow]{failed} of {len(frame)} failed[/]; first error: {first}", highlight=False)
        if failed == len(frame):
            raise typer.Exit(code=1)


@app.command()
def describe(
    input: InputArg,
    out: OutOption = None,
    smiles_column: SmilesColumn = None,
    standardize: Annotated[bool, typer.Option(help="Standardise first (strip salts, neutralise, canonical tautomer).")] = True,
) -> None:
    """Drug-likeness descriptors (MW, cLogP, TPSA, HBA/HBD, QED, SA, penalised logP, alerts)."""
    from molops.descriptors import describe as describe_frame
    from molops.standardize import standardize_frame

    try:
        frame = load_input(input, smiles_column)
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    if standardize:
        frame = standardize_frame(frame)
    frame = describe_frame(frame)
    columns = ["name", "smiles", "molecular_weight_da", "clogp", "tpsa_a2", "hba", "hbd", "qed", "sa_score",
               "penalized_logp", "passes_lipinski", "n_pains_alerts", "n_brenk_alerts", "error"]
    if out is None or len(frame) <= 20:
        _print_table(frame, columns)
    _finish(frame, out, "molecules")


@app.command()
def conformers(
    input: InputArg,
    out: OutOption = None,
    smiles_column: SmilesColumn = None,
    n_conformers: Annotated[int, typer.Option("--n-conformers", "-n", help="At most this many conformers per molecule.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed of the embedding.")] = 42,
    prune_rms: Annotated[float, typer.Option(help="Minimum heavy-atom RMSD between conformers (Å).")] = 0.5,
    energy_window: Annotated[float, typer.Option(help="Keep conformers within this window of the minimum (kcal/mol).")] = 10.0,
    force_field: Annotated[str, typer.Option(help="MMFF94, MMFF94s or UFF (UFF is the fallback).")] = "MMFF94",
    rank: Annotated[bool, typer.Option("--rank", help="Rank the conformers by the conformer-trained network (DFT-level energies).")] = False,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="Conformer model file(s) for --rank (default: the shipped ensemble).")] = None,
) -> None:
    """ETKDGv3 conformers minimised with MMFF94, pruned by RMSD and energy window (SDF out).

    With --rank, each conformer also gets the network's energy at the reference DFT level
    (relative, kcal/mol, with the ensemble's uncertainty) and the table is sorted by it.
    """
    from tqdm import tqdm

    from molops.conformers import ConformerOptions, generate_conformers

    try:
        options = ConformerOptions(n_conformers=n_conformers, seed=seed, prune_rms_angstrom=prune_rms,
                                   energy_window_kcal_mol=energy_window, force_field=force_field)
        frame = load_input(input, smiles_column)
    except (ChemToolkitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if rank:
        _rank_conformers(frame, out, options, model)
        return
    rows = []
    for record in tqdm(frame.to_dict("records"), desc="conformers", unit="mol", disable=len(frame) < 2):
        base = {"name": _label(record), "mol": None, "error": record["error"]}
        if record["error"] is None:
            try:
                ensemble = generate_conformers(record["mol"], options)
                for conf in ensemble.to_frame().to_dict("records"):
                    rows.append({**base, **conf})
                continue
            except ChemToolkitError as exc:
                base["error"] = str(exc)
        rows.append(base)
    result = pd.DataFrame(rows)
    result.insert(1, "smiles", [None if m is None else mol_to_smiles(Chem.RemoveHs(m)) for m in result["mol"]])
    _print_table(result, ["name", "conformer_id", "relative_energy_kcal_mol", "energy_kcal_mol",
                          "force_field", "converged", "error"])
    _finish(result, out, "conformers")


@app.command()
def similar(
    query: Annotated[str, typer.Argument(help="Query SMILES, or a molecule file of queries.")],
    library: Annotated[str, typer.Option(help="'moses' (MOSES training set, 1.58M) or a molecule file.")] = "moses",
    k: Annotated[int, typer.Option("-k", help="Neighbours per query.")] = 10,
    min_similarity: Annotated[float, typer.Option(help="Drop neighbours below this Tanimoto similarity.")] = 0.0,
    index: Annotated[Optional[Path], typer.Option(help="Index file (.npz) to load, or to write after building.")] = None,
    out: OutOption = None,
    smiles_column: SmilesColumn = None,
) -> None:
    """Nearest neighbours by Tanimoto similarity (Morgan r=2, 2048 bits) in a library."""
    from molops.library import load_library_index

    if k < 1 or not 0.0 <= min_similarity <= 1.0:
        raise _fail(f"-k ({k}) must be at least 1 and --min-similarity ({min_similarity}) in [0, 1]")
    try:
        queries = load_input(query, smiles_column)
        library_index = load_library_index(library, index=index, smiles_column=smiles_column,
                                           progress=True, log=stderr.print)
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    results = []
    for record in queries.to_dict("records"):
        label = _label(record)
        if record["error"] is not None:
            results.append(pd.DataFrame({"query": [label], "error": [record["error"]]}))
            continue
        hits = library_index.search(record["mol"], k=k, min_similarity=min_similarity)
        hits.insert(0, "query", label)
        hits["error"] = None
        results.append(hits)
    frame = pd.concat(results, ignore_index=True)
    _print_table(frame, ["query", "rank", "id", "smiles", "similarity", "error"])
    _finish(frame, out, "neighbours")


@app.command()
def featurize(
    input: InputArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 feature cache to write (created or extended).")],
    smiles_column: SmilesColumn = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address (default: a local cluster).")] = None,
    level: Annotated[str, typer.Option(help="Level of theory of the cheap calculation.")] = "hf/sto-3g/df",
    gradient: Annotated[bool, typer.Option(help="Also compute the analytic nuclear gradient.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Local Dask workers (default: one per core).")] = None,
) -> None:
    """Orbital features (cheap PySCF calculation) of every molecule, into an HDF5 cache.

    3D inputs (SDF, XYZ, PDB) keep their geometry; SMILES get the lowest MMFF94 conformer.
    Re-running with the same --out resumes: finished molecules are not recomputed.
    """
    from quantum_features.datasets import featurize_many
    from quantum_features.levels import get_level

    try:
        get_level(level)
        frame = load_input(input, smiles_column)
    except (ChemToolkitError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    records = frame.to_dict("records")
    good = [r for r in records if r["error"] is None]
    names = [f"{i}:{_label(r)}" for i, r in enumerate(records) if r["error"] is None]
    with _resumable(out):
        result = featurize_many([r["mol"] for r in good], out, names=names, scheduler=scheduler,
                                progress=True, n_workers=workers, level=level, gradient=gradient)
    failed_inputs = pd.DataFrame(
        {"key": [f"{i}:{_label(r)}" for i, r in enumerate(records) if r["error"] is not None],
         "error": [r["error"] for r in records if r["error"] is not None]}
    )
    result = pd.concat([result, failed_inputs], ignore_index=True)
    _print_table(result, ["key", "n_atoms", "energy_hartree", "seconds", "error"])
    failed = int(result["error"].notna().sum())
    console.print(f"{len(result) - failed} molecules featurised into {out}")
    if failed:
        stderr.print(f"[yellow]{failed} of {len(result)} failed[/]", highlight=False)
        if failed == len(result):
            raise typer.Exit(code=1)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML training config (see quantum_features/configs/).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Override the config's out_dir.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes; run again to resume.")] = None,
    n_train: Annotated[Optional[int], typer.Option(help="Override the config's number of training molecules.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the config's seed (e.g. for ensemble members).")] = None,
) -> None:
    """Train the orbital-feature property network on QM9 (resumes from out_dir/last.pt)."""
    from dataclasses import replace

    from quantum_features.train import load_config
    from quantum_features.train import train as run_training

    try:
        settings = load_config(config)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if out_dir is not None:
        settings = replace(settings, out_dir=str(out_dir))
    overrides = {"max_minutes": max_minutes, "n_train": n_train, "seed": seed}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    summary = run_training(settings)
    console.print(f"epoch {summary['epoch']} (best {summary['best_epoch']}): {summary['stop_reason'] or 'stopped'}")
    for key, value in summary["val_mae"].items():
        console.print(f"  validation {key}: {value:.4g}")


@app.command()
def predict(
    input: InputArg,
    out: OutOption = None,
    smiles_column: SmilesColumn = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="Weights file(s); default: the shipped ensemble.")] = None,
) -> None:
    """Quantum properties (energy, HOMO, LUMO, gap, dipole) from the orbital-feature network.

    Each molecule gets a cheap HF/STO-3G calculation on its lowest MMFF94 conformer (3D
    inputs keep their geometry); the `*_std_*` columns are the ensemble spread.
    """
    from quantum_features.predict import load_ensemble, predict_properties

    try:
        frame = load_input(input, smiles_column)
        ensemble = load_ensemble(model or None)
    except (ChemToolkitError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    good = frame["error"].isna().to_numpy()
    # models=None for the shipped ensemble: its spread reference (warning column) applies only to it.
    predicted = predict_properties(list(frame.loc[good, "mol"]), models=ensemble if model else None, progress=True)
    result = frame.drop(columns=["mol"]).copy()
    for column in predicted.columns.drop(["input", "error"]):
        result.loc[good, column] = predicted[column].to_numpy()
    result.loc[good, "error"] = predicted["error"].to_numpy()
    columns = ["name", "smiles", "energy_hartree", "homo_ev", "lumo_ev", "gap_ev", "gap_std_ev", "dipole_debye", "error"]
    if out is None or len(result) <= 20:
        _print_table(result, columns)
    warned = result["warning"].notna() if "warning" in result.columns else pd.Series(False, index=result.index)
    if warned.any():
        first = escape(str(result.loc[warned, "warning"].iloc[0]))
        stderr.print(f"[yellow]{int(warned.sum())} of {len(result)} predictions carry a warning[/] (column warning); "
                     f"first: {first}", highlight=False)
    _finish(result, out, "predictions")


@app.command()
def dock(
    ligands: Annotated[str, typer.Argument(help="A SMILES string or a molecule file (.smi/.csv/.sdf/...).")],
    out: Annotated[Path, typer.Option("--out", "-o", callback=_checked_out,
                                      help="Results table (.parquet or .csv); a journal beside it makes reruns resume.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="A dockstring receptor, e.g. DRD2 (see --list-targets).")] = None,
    receptor: Annotated[Optional[Path], typer.Option("--receptor", help="Your receptor PDB/mmCIF file instead of --target.")] = None,
    ligand_box: Annotated[Optional[Path], typer.Option("--ligand-box", help="Reference ligand (SDF/MOL2/PDB) in the receptor's frame: the box encloses it.")] = None,
    center: Annotated[Optional[tuple[float, float, float]], typer.Option("--center", help="Box centre x y z (Å).")] = None,
    size: Annotated[Optional[tuple[float, float, float]], typer.Option("--size", help="Box edge lengths x y z (Å).")] = None,
    padding: Annotated[float, typer.Option(help="Å added around --ligand-box on every side.")] = 5.0,
    cofactor: Annotated[Optional[list[str]], typer.Option("--cofactor", help="Keep this HETATM residue of --receptor: NAME (e.g. NDP) or NAME=SMILES; repeatable.")] = None,
    poses: Annotated[Optional[Path], typer.Option("--poses", help="SDF of all poses, score in vina_score_kcal_mol.")] = None,
    exhaustiveness: Annotated[int, typer.Option(help="Vina Monte-Carlo runs per ligand.")] = 8,
    n_poses: Annotated[int, typer.Option(help="Poses kept per ligand.")] = 9,
    scoring: Annotated[str, typer.Option(help="vina or vinardo.")] = "vina",
    seed: Annotated[int, typer.Option(help="Vina and embedding seed.")] = 0,
    ph: Annotated[float, typer.Option(help="Protonate ligands at this pH.")] = 7.4,
    workers: Annotated[Optional[int], typer.Option(help="Local Dask worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")] = None,
    retry_failed: RetryFailed = False,
    smiles_column: SmilesColumn = None,
    list_targets: Annotated[bool, typer.Option("--list-targets", help="Print the dockstring target names and exit.")] = False,
) -> None:
    """Dock ligands with AutoDock Vina into a dockstring target or your own receptor.

    Ligands are protonated at --ph, embedded in 3D and typed by Meeko; each worker computes the
    grid maps once and docks many ligands. Rerunning the same command resumes.
    """
    from molops.docking import Box, DockingSettings, dock_library, load_target, prepare_receptor
    from molops.docking import list_targets as known_targets

    if list_targets:
        console.print(" ".join(known_targets()))
        return
    try:
        if (target is None) == (receptor is None):
            raise ChemToolkitError("give either --target NAME or --receptor FILE")
        if (center is None) != (size is None):  # half a box would be ignored silently
            raise ChemToolkitError("--center and --size define the box together: give both or neither")
        if center is not None and ligand_box is not None:
            raise ChemToolkitError("give the box either as --ligand-box or as --center and --size, not both")
        if receptor is not None:
            box = Box(center, size) if center is not None and size is not None else None
            if box is None and ligand_box is None:
                raise ChemToolkitError("--receptor needs a box: --ligand-box ref.sdf, or --center and --size")
            cofactors = None
            if cofactor:
                from molops.docking.receptor import COFACTOR_SMILES

                pairs = [c.split("=", 1) if "=" in c else (c, COFACTOR_SMILES.get(c)) for c in cofactor]
                unknown = [name for name, smiles in pairs if smiles is None]
                if unknown:
                    raise ChemToolkitError(f"--cofactor {unknown[0]}: no SMILES known; give NAME=SMILES (known: {', '.join(COFACTOR_SMILES)})")
                cofactors = dict(pairs)
            docking_target = prepare_receptor(receptor, box=box, ligand=None if box else ligand_box,
                                              padding=padding, cofactors=cofactors)
        else:
            docking_target = load_target(target)
            if center is not None and size is not None:
                docking_target = type(docking_target)(docking_target.name, docking_target.receptor_pdbqt, Box(center, size), docking_target.source)
        settings = DockingSettings(scoring=scoring, exhaustiveness=exhaustiveness, n_poses=n_poses, seed=seed, ph=ph, cpu=1)
        frame = load_input(ligands, smiles_column)
    except (ChemToolkitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    stderr.print(f"docking {len(frame)} ligand(s) into {docking_target.name} ({docking_target.box})", highlight=False)
    parquet = out if out.suffix.lower() == ".parquet" else out.with_suffix(".parquet")
    try:
        with _resumable(parquet):
            result = dock_library(frame, docking_target, out=parquet, poses=poses, settings=settings,
                                  scheduler=scheduler, n_workers=workers, retry_failed=retry_failed)
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    if parquet != out:
        write_molecules(result.drop(columns=["pose_scores_kcal_mol"]), out)
    ranked = result.sort_values("vina_score_kcal_mol", na_position="last")
    _print_table(ranked.head(20), ["name", "docked_smiles", "vina_score_kcal_mol", "status", "error"],
                 title=f"best {min(20, len(ranked))} of {len(ranked)} by Vina score (kcal/mol)")
    failed = int((result["status"] == "failed").sum())
    console.print(f"wrote {len(result)} rows to {out}" + (f" and poses to {poses}" if poses else ""))
    if failed:
        first = escape(str(result["error"].dropna().iloc[0]))
        stderr.print(f"[yellow]{failed} of {len(result)} failed[/]; first error: {first}", highlight=False)
        if failed == len(result):
            raise typer.Exit(code=1)


@contextlib.contextmanager
def _stoppable(verb: str, config: Path):
    """Ctrl-C or SIGTERM end a training cleanly: its checkpoint is written (by the training
    loop's ``finally``) and the command says how to resume."""
    from molops.runfiles import interrupt_on_terminate

    try:
        with interrupt_on_terminate():
            yield
    except KeyboardInterrupt:
        stderr.print(f"stopped; checkpoint written. Resume with: molops {verb} {config}")
        raise typer.Exit(code=130) from None


@contextlib.contextmanager
def _resumable(out: Path):
    """Ctrl-C or SIGTERM stop a journalled batch job with a message instead of a traceback:
    every finished row is already in the journal beside `out`, and the same command resumes."""
    from molops.runfiles import interrupt_on_terminate

    try:
        with interrupt_on_terminate():
            yield
    except KeyboardInterrupt:
        stderr.print(f"stopped; finished rows are kept beside {out}. Run the same command again to resume.",
                     highlight=False)
        raise typer.Exit(code=130) from None


@app.command("train-generator")
def train_generator(
    config: Annotated[Path, typer.Argument(help="YAML training config, e.g. generation/configs/seq2seq_moses.yaml.")],
    out_dir: Annotated[Optional[str], typer.Option(help="Run directory (checkpoints, metrics.csv); overrides the config.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes; run again to resume.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Total optimiser steps of the run.")] = None,
) -> None:
    """Train the SMILES BART on MOSES (denoising autoencoder); resumes from the run's last.pt."""
    from dataclasses import replace

    from generation.train_seq2seq import Seq2SeqTrainConfig, train_seq2seq

    try:
        settings = Seq2SeqTrainConfig.from_yaml(config)
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    overrides = {k: v for k, v in {"out_dir": out_dir, "max_minutes": max_minutes, "max_steps": max_steps}.items() if v is not None}
    with _stoppable("train-generator", config):
        state = train_seq2seq(replace(settings, **overrides))
    console.print(f"step {state['step']} of {settings.max_steps if max_steps is None else max_steps}; "
                  f"best validation loss {state['best_val_loss']:.4f}; "
                  + ("finished" if state["finished"] else "stopped; run the same command to resume"))


@app.command("train-fusion")
def train_fusion_command(
    config: Annotated[Path, typer.Argument(help="YAML config, e.g. generation/configs/fusion_moses.yaml.")],
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes; run again to resume.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Total optimiser steps of the run.")] = None,
) -> None:
    """Train RetMol's fusion module on MOSES neighbour lists (BART frozen); writes generator.pt."""
    from dataclasses import replace

    from generation.train_fusion import FusionTrainConfig, train_fusion

    try:
        settings = FusionTrainConfig.from_yaml(config)
        overrides = {k: v for k, v in {"max_minutes": max_minutes, "max_steps": max_steps}.items() if v is not None}
        with _stoppable("train-fusion", config):
            state = train_fusion(replace(settings, **overrides))
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    console.print(f"step {state['step']}; best validation loss {state['best_val_loss']:.4f}; "
                  + ("finished" if state["finished"] else "stopped; run the same command to resume"))


def _rank_conformers(frame: pd.DataFrame, out: Path | None, options, model: list[Path] | None) -> None:
    from dataclasses import asdict

    from quantum_features.calculator import load_conformer_models, rank_conformers

    try:
        models = load_conformer_models(model or None)  # once, not per molecule
    except (ChemToolkitError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    conformer_options = {k: v for k, v in asdict(options).items() if k not in ("n_conformers", "seed")}
    rows = []
    for record in frame.to_dict("records"):
        name = _label(record)
        if record["error"] is not None:
            rows.append({"name": name, "mol": None, "error": record["error"]})
            continue
        try:
            ranked = rank_conformers(record["mol"], options.n_conformers, models=models, seed=options.seed,
                                     **conformer_options)
        except (ChemToolkitError, ValueError) as exc:
            rows.append({"name": name, "mol": None, "error": str(exc)})
            continue
        for row in ranked.to_dict("records"):
            conformer = Chem.Mol(ranked.attrs["mol"], confId=int(row["conformer_id"]))
            rows.append({"name": name, **row, "mol": conformer, "error": None})
    result = pd.DataFrame(rows)
    result.insert(1, "smiles", [None if m is None else mol_to_smiles(Chem.RemoveHs(m)) for m in result["mol"]])
    _print_table(result, ["name", "rank", "conformer_id", "relative_energy_kcal_mol", "uncertainty_kcal_mol",
                          "mmff_relative_kcal_mol", "error"])
    _finish(result, out, "ranked conformers")


@app.command()
def label(
    input: InputArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Label file (.npz); grows over runs, resumable.")],
    smiles_column: SmilesColumn = None,
    level: Annotated[str, typer.Option(help="Reference level (quantum_features.levels).")] = "b3lyp-d3bj/def2-svp/df",
    n_conformers: Annotated[int, typer.Option("--n-conformers", "-n", help="MMFF94 conformers per molecule.")] = 4,
    n_distorted: Annotated[int, typer.Option("--n-distorted", help="Distorted (non-equilibrium) copies per molecule.")] = 2,
    distortion: Annotated[float, typer.Option(help="Gaussian displacement of distorted copies (Å).")] = 0.03,
    seed: Annotated[int, typer.Option(help="Seeds conformers and distortions.")] = 0,
    device: Annotated[str, typer.Option(help="auto (GPU via gpu4pyscf when present), cpu or gpu.")] = "auto",
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop starting new structures after this long (a molecule may be left partly labelled); rerun to resume.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="LocalCluster worker processes (default: one per core).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Compute again the structures that failed in earlier runs.")] = False,
) -> None:
    """DFT energies and forces of conformers (and distorted copies) at a reference level.

    Writes a compact, versioned .npz (geometries Å, energies Hartree, forces Hartree/Å, level,
    timings) every few molecules; rerunning the same command resumes from its journal.
    """
    from quantum_features.labelling import LabelOptions, label_molecules

    try:
        options = LabelOptions(level=level, n_conformers=n_conformers, n_distorted=n_distorted,
                               distortion_angstrom=distortion, seed=seed, device=device)
        if max_minutes is not None and not max_minutes > 0:
            raise ValueError(f"--max-minutes {max_minutes} must be positive")
        frame = load_input(input, smiles_column)
    except (ChemToolkitError, ValueError, KeyError) as exc:
        raise _fail(str(exc).strip("'\"")) from None
    molecules, unreadable = {}, []
    for record in frame.to_dict("records"):
        name = _label(record)
        if record["error"] is not None:
            unreadable.append((name, record["error"]))
        else:
            molecules[name if name not in molecules else f"{name}#{len(molecules)}"] = record["mol"]
    for name, error in unreadable:
        stderr.print(f"[yellow]skipped[/] {escape(name)}: {escape(str(error))}", highlight=False)
    if not molecules:
        raise _fail("no readable molecule to label")
    try:
        with _resumable(out):
            labels, table = label_molecules(molecules, out, options=options, scheduler=scheduler, n_workers=workers,
                                            max_minutes=max_minutes, retry_failed=retry_failed)
    except ChemToolkitError as exc:
        raise _fail(str(exc)) from None
    failed = table[table["error"].notna()]
    summary = labels.summary()
    console.print(f"{summary['structures']} structures of {summary['molecules']} molecules at {summary['level']} "
                  f"in {out} ({summary['label_hours']:.2f} h of labelling)", highlight=False)
    if len(failed):
        stderr.print(f"[yellow]{len(failed)} failed[/]; first: {escape(str(failed['key'].iloc[0]))}: "
                     f"{escape(str(failed['error'].iloc[0]))}", highlight=False)
        if failed["key"].nunique() == len(table):
            raise typer.Exit(code=1)


@app.command()
def screen(
    library: Annotated[Path, typer.Argument(help="Molecule file (.smi/.csv/.sdf, gzip too); streamed, never loaded whole.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Result table (.parquet); poses and report are written beside it.")],
    target: Annotated[Optional[str], typer.Option(help="dockstring target to dock the best candidates against (e.g. DRD2).")] = None,
    filters: Annotated[str, typer.Option(help="Comma-separated filters: lipinski, pains, brenk ('' for none).")] = "lipinski,pains",
    predict: Annotated[str, typer.Option(help="Comma-separated predicted properties: gap, homo, lumo, dipole, energy.")] = "",
    dock_top: Annotated[int, typer.Option(help="Dock this many of the best filtered molecules.")] = 500,
    preselect: Annotated[str, typer.Option(help="Column choosing what to dock (qed, or a predicted one such as gap_ev); ':min' to prefer low values.")] = "qed",
    exhaustiveness: Annotated[int, typer.Option(help="Vina exhaustiveness of the docking stage.")] = 8,
    chunk_size: Annotated[int, typer.Option(help="Molecules per task and part file.")] = 500,
    smiles_column: SmilesColumn = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="LocalCluster worker processes (default: one per core).")] = None,
) -> None:
    """Screen a library: standardise → descriptors → filters → (predicted properties) → docking of the best.

    Resumable: rerun the same command after an interruption. Writes the ranked Parquet table,
    an SDF of the top poses and an HTML/PNG report with score distributions and top hits.
    """
    from molops.screening import ScreenSettings
    from molops.screening import screen as run_screen

    column, _, direction = preselect.partition(":")
    if direction not in ("", "min", "max"):
        raise _fail(f"--preselect {preselect!r}: the suffix must be ':min' or ':max'")
    try:
        settings = ScreenSettings(
            target=target, filters=tuple(f.strip() for f in filters.split(",") if f.strip()),
            predict=tuple(p.strip() for p in predict.split(",") if p.strip()), dock_top=dock_top,
            preselect=column, preselect_direction="minimize" if direction == "min" else "maximize",
            exhaustiveness=exhaustiveness, chunk_size=chunk_size)
        with _resumable(out):
            summary = run_screen(library, out, settings, scheduler=scheduler, n_workers=workers, smiles_column=smiles_column)
    except (ChemToolkitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(summary.as_text(), highlight=False)
    top = pd.read_parquet(out, columns=["rank", "name", "smiles", "vina_score_kcal_mol", "qed", "passes_filters"])
    top = top[top["rank"].notna()].sort_values("rank").head(10)
    if len(top):
        _print_table(top, ["rank", "name", "smiles", "vina_score_kcal_mol", "qed"], title="top docked molecules")
    for what, path in summary.outputs.items():
        console.print(f"{what}: {path}", highlight=False)
    if summary.records == summary.unreadable + summary.standardisation_failed:
        raise typer.Exit(code=1)


def _write_ranked(frame: pd.DataFrame, out: Path, what: str) -> None:
    """Write a best-first table with a ``rank`` column (SDF gets 2D molecules from the SMILES)."""
    table = frame.copy()
    table.insert(0, "rank", range(1, len(table) + 1))
    if out.suffix.lower() == ".sdf":
        table["mol"] = [Chem.MolFromSmiles(s) for s in table["smiles"]]
    table.attrs = {}
    write_molecules(table, out)
    console.print(f"wrote {len(table)} {what} to {out}")


def _exemplar_database(library: str, no_retrieval: bool):
    """None for the default MOSES database (loaded by the generator loop), else the file's molecules."""
    if library == "moses" or no_retrieval:
        return None
    from generation.retrieval import ExemplarDatabase

    return ExemplarDatabase.from_file(library, log=lambda message: stderr.print(f"[yellow]{escape(message)}[/]"))


def _optimize_lead_file(leads: pd.DataFrame, objective, settings, model: Path | None, library: str, keep: int,
                        out: Path, workers: int | None, scheduler: str | None, retry_failed: bool) -> None:
    """`molops optimize FILE`: every lead on Dask, each lead's best printed, all kept written."""
    from generation.batch import optimize_leads

    if library != "moses" and not settings.use_retrieval:
        library = "moses"  # not loaded without retrieval
    with _resumable(out):
        table = optimize_leads(leads, objective, out=out, settings=settings, generator_path=model, library=library,
                               keep=keep, scheduler=scheduler, n_workers=workers, retry_failed=retry_failed)
    name = [c for c in table.columns if c.startswith("lead_") and c not in ("lead_record", "lead_name", "lead_smiles")][0]
    value = name.removeprefix("lead_")
    best = table.drop_duplicates("lead_record").rename(columns={"smiles": "best_smiles", value: f"best_{value}"})
    _print_table(best, ["lead_name", name, "best_smiles", f"best_{value}", "similarity", "status", "error"],
                 title=f"best molecule of each of {len(best)} leads ({value})")
    _report_series(table, best, out, "molecules", "leads")


def _report_series(table: pd.DataFrame, best: pd.DataFrame, out: Path, found: str, inputs: str) -> None:
    """What a file run wrote and how many inputs failed; exit 1 when no input gave a result."""
    console.print(f"wrote {len(table)} rows ({int((table['status'] == 'ok').sum())} {found}) to {out}")
    failed = int((best["status"] == "failed").sum())
    if failed:
        first = escape(str(best.loc[best["status"] == "failed", "error"].iloc[0]))
        stderr.print(f"[yellow]{failed} of {len(best)} {inputs} failed[/]; first error: {first}", highlight=False)
    if (best["status"] != "ok").all():
        raise typer.Exit(code=1)


@app.command()
def optimize(
    lead: Annotated[str, typer.Argument(help="The lead molecule (SMILES), or a file of leads (.smi/.csv/.sdf/...) optimised one by one on Dask.")],
    objective: Annotated[str, typer.Option("--objective", help="qed, plogp, logp, sa, tpsa, gap_ev, homo_ev, lumo_ev, dipole_debye; ':min' minimises (e.g. logp:min).")] = "qed",
    dock: Annotated[Optional[str], typer.Option("--dock", help="Optimise the Vina score against this dockstring target instead (e.g. DRD2).")] = None,
    min_similarity: Annotated[float, typer.Option(help="Tanimoto floor (Morgan r=2) to the lead.")] = 0.4,
    min_qed: Annotated[Optional[float], typer.Option(help="Hard constraint: QED at least this.")] = None,
    max_sa: Annotated[Optional[float], typer.Option(help="Hard constraint: SA score at most this.")] = None,
    goal: Annotated[Optional[float], typer.Option("--goal", help="Objective value that meets your criterion (e.g. 0.9 for QED): exemplars are retrieved among the molecules reaching it (RetMol's retrieval), which steers harder.")] = None,
    n_iter: Annotated[int, typer.Option("--n-iter", help="Iterations of the RetMol loop.")] = 20,
    n_samples: Annotated[int, typer.Option(help="Perturbed decodes per carried molecule and iteration.")] = 20,
    top_k: Annotated[int, typer.Option(help="Molecules carried into the next iteration.")] = 5,
    noise: Annotated[float, typer.Option(help="Standard deviation of the noise on the fused states.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; equal seeds give equal results.")] = 0,
    exhaustiveness: Annotated[int, typer.Option(help="Vina exhaustiveness with --dock.")] = 8,
    no_retrieval: Annotated[bool, typer.Option("--no-retrieval", help="Ablation: the same loop without exemplars.")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", help="Generator file (default: the shipped RetMol generator).")] = None,
    library: Annotated[str, typer.Option(help="Exemplar database: 'moses' (1.58M, precomputed properties) or a molecule file.")] = "moses",
    out: OutOption = None,
    keep: Annotated[int, typer.Option(help="With a file of leads: best molecules kept per lead.")] = 10,
    workers: Annotated[Optional[int], typer.Option(help="With a file of leads: local Dask worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="With a file of leads: address of an existing Dask scheduler, e.g. tcp://host:8786.")] = None,
    retry_failed: RetryFailed = False,
    smiles_column: SmilesColumn = None,
) -> None:
    """Optimise a lead with the retrieval-augmented generator (RetMol) under a similarity floor.

    Prints the best molecules found (objective, similarity to the lead, QED, SA) and writes
    all of them, ranked, to --out (.csv/.parquet/.sdf).

    Given a file of leads, optimises each on its own (same settings and seed, Dask workers),
    writes the best --keep molecules of every lead to --out (required) and prints each lead's
    best; a journal beside --out makes a rerun resume, and unreadable leads are failed rows.
    """
    from generation.optimize import Constraint, OptimizeSettings, load_generator
    from generation.optimize import optimize as run_optimization
    from molops import objectives

    try:
        scorer = objectives.docking(dock, exhaustiveness=exhaustiveness, seed=seed) if dock else objectives.by_name(objective)
        constraints = []
        if min_qed is not None:
            constraints.append(Constraint("qed", minimum=min_qed))
        if max_sa is not None:
            constraints.append(Constraint("sa_score", maximum=max_sa))
        settings = OptimizeSettings(n_iterations=n_iter, n_samples=n_samples, top_k=top_k, noise_std=noise,
                                    min_similarity=min_similarity, use_retrieval=not no_retrieval, seed=seed,
                                    constraints=tuple(constraints), goal=goal)
        reading = (f"objective: {scorer.description}; similarity ≥ {min_similarity:g}"
                   + "".join(f"; {c}" for c in constraints) + (f"; goal {goal:g}" if goal is not None else ""))
        if _looks_like_file(lead):
            if out is None:
                raise ChemToolkitError(f"{lead}: a file of leads needs --out for the results (and its resume journal)")
            leads = load_input(lead, smiles_column)
            stderr.print(f"{reading}; {len(leads)} lead(s) from {lead}", highlight=False)
            # One Vina thread per ligand: the file's leads already run one per core.
            task = objectives.docking(dock, exhaustiveness=exhaustiveness, seed=seed, cpu=1) if dock else objective
            _optimize_lead_file(leads, task, settings, model, library, keep, out, workers, scheduler, retry_failed)
            return
        generator = load_generator(model)
        database = _exemplar_database(library, no_retrieval)
        stderr.print(reading, highlight=False)
        frame = run_optimization(lead, scorer, generator=generator, database=database, settings=settings)
    except (ChemToolkitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    lead_row = frame.attrs["lead"]
    qed_part = "" if scorer.name == "qed" else f", QED {lead_row['qed']:.3f}"
    stderr.print(f"lead {lead_row['smiles']}: {scorer.name} {lead_row[scorer.name]:.3f}{qed_part}, "
                 f"SA {lead_row['sa_score']:.2f}", highlight=False)
    if frame.empty:
        stderr.print("[yellow]no valid molecule met the constraints[/]; try more iterations, more noise or a lower --min-similarity")
        raise typer.Exit(code=1)
    _print_table(frame.head(10), list(dict.fromkeys(["smiles", scorer.name, "similarity", "qed", "sa_score", "iteration"])),
                 title=f"best {min(10, len(frame))} of {len(frame)} molecules ({scorer.name}, {scorer.direction})")
    if out is not None:
        _write_ranked(frame, out, "molecules")


def _edit_file(molecules: pd.DataFrame, reading, n: int, model: Path | None, library: str, settings, out: Path,
               workers: int | None, scheduler: str | None, retry_failed: bool) -> None:
    """`molops edit FILE PROMPT`: every molecule on Dask, each one's best edit printed, all edits written."""
    from generation.batch import edit_molecules

    with _resumable(out):
        table = edit_molecules(molecules, reading, out=out, n=n, settings=settings, generator_path=model,
                               library=library, scheduler=scheduler, n_workers=workers, retry_failed=retry_failed)
    best = table.drop_duplicates("input_record")
    properties = [c for c in table.columns if c.startswith("delta_")]
    strict = int(best["hit_strict"].fillna(False).astype(bool).sum()) if "hit_strict" in best.columns else 0
    _print_table(best, ["input_name", "smiles", "similarity", *properties, "hit_loose", "hit_strict", "status", "error"],
                 title=f"best edit of each of {len(best)} molecules ({strict} strict hits)")
    _report_series(table, best, out, "edits", "molecules")


@app.command()
def edit(
    molecule: Annotated[str, typer.Argument(help="The molecule to edit (SMILES), or a file of molecules (.smi/.csv/.sdf/...) each edited on Dask.")],
    prompt: Annotated[str, typer.Argument(help='What to change, in words, e.g. "make it more soluble in water".')],
    n: Annotated[int, typer.Option("--n", help="Edits to return.")] = 5,
    min_similarity: Annotated[float, typer.Option(help="Tanimoto floor (Morgan r=2) to the input.")] = 0.6,
    n_iter: Annotated[int, typer.Option("--n-iter", help="Iterations per generator round (a second round runs when the first holds fewer than --n strict hits).")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed; equal seeds give equal results.")] = 0,
    explain: Annotated[bool, typer.Option("--explain", help="Only print how the prompt is read.")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", help="Generator file (default: the shipped RetMol generator).")] = None,
    library: Annotated[str, typer.Option(help="Exemplar database: 'moses' or a molecule file.")] = "moses",
    analogues: Annotated[bool, typer.Option(
        "--analogues/--no-analogues",
        help="Add the input's one-step analogues within the floor to the exemplars (they guide the generator)."
    )] = True,
    single_atom_edits: Annotated[bool, typer.Option(
        "--single-atom-edits/--no-single-atom-edits",
        help="Also offer the input's single-atom edits within the floor as edits (the generator runs when they hold "
             "fewer than --n strict hits); off: the generator's edits only. Ignored for docking prompts."
    )] = True,
    out: OutOption = None,
    workers: Annotated[Optional[int], typer.Option(help="With a file of molecules: local Dask worker processes (default: one per core).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="With a file of molecules: address of an existing Dask scheduler.")] = None,
    retry_failed: RetryFailed = False,
    smiles_column: SmilesColumn = None,
) -> None:
    """Edit a molecule as a text prompt asks ("fewer H-bond donors", "look more like aspirin").

    Prints how the prompt was read (which property, which way, the similarity floor), then the
    edits: strict hits first, closest to the input first, each with its source (a single-atom
    edit of the input, or the generator, which runs when single-atom edits hold fewer than --n strict hits).
    Prompts the editor cannot ground in a property it can change are refused.

    Given a file of molecules, edits each as the prompt asks (read once), writes every
    molecule's edits to --out (required; a journal beside it makes a rerun resume) and prints
    each molecule's best edit; unreadable molecules are failed rows.
    """
    from generation.editor import EditSettings
    from generation.editor import edit as run_edit
    from generation.optimize import load_generator
    from generation.prompts import interpret

    try:
        reading = interpret(prompt, min_similarity)
        stderr.print(f"read as: {reading.describe()}", highlight=False)
        if explain:
            return
        settings = EditSettings(n_iterations=n_iter, seed=seed, analogue_exemplars=analogues,
                                single_atom_edits=single_atom_edits)
        if _looks_like_file(molecule):
            if out is None:
                raise ChemToolkitError(f"{molecule}: a file of molecules needs --out for the edits (and its resume journal)")
            _edit_file(load_input(molecule, smiles_column), reading, n, model, library, settings, out, workers,
                       scheduler, retry_failed)
            return
        to_mol(molecule)  # a clear parse error before the model loads
        frame = run_edit(molecule, reading, n=n, generator=load_generator(model),
                         database=_exemplar_database(library, False), settings=settings)
    except (ChemToolkitError, ValueError) as exc:
        raise _fail(str(exc)) from None
    before = ", ".join(f"{k} {v:.3g}" for k, v in frame.attrs["input"].items() if k != "smiles")
    stderr.print(f"input {frame.attrs['input']['smiles']}: {before}", highlight=False)
    for note in frame.attrs["notes"]:
        stderr.print(f"[yellow]note[/]: {note}", highlight=False)
    if frame.empty:
        stderr.print("[yellow]no valid edit met the similarity floor[/]; try --n-iter or a lower --min-similarity")
        raise typer.Exit(code=1)
    if not frame["hit_loose"].any():
        stderr.print("[yellow]no edit moved every requested property the right way[/]; the closest attempts follow")
    _print_table(frame, [c for c in frame.columns if c not in ("sa_score",)],
                 title=f"{len(frame)} edits ({int(frame['hit_strict'].sum())} strict hits) of {frame.attrs['candidates']} "
                       f"considered ({frame.attrs['single_atom_edits']} single-atom edits, "
                       f"{frame.attrs['rounds']} generator round(s)), {frame.attrs['seconds']:.0f} s")
    if out is not None:
        _write_ranked(frame, out, "edits")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ChemToolkitError as exc:
        # A toolkit error that a verb did not report itself still reads as a message, not a traceback.
        _fail(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
