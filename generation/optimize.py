"""RetMol's iterative optimisation loop around a lead molecule.

Each iteration, for every molecule carried forward (the lead at first):
1. retrieve `k_exemplars` molecules most similar to it among those in the exemplar database
   that already do better on the objective and meet the hard constraints;
2. fuse its encoder states with theirs (`generation.fusion`), add Gaussian noise
   (``noise_std``) to `n_samples` copies, and decode each copy greedily;
3. keep the valid, new molecules that meet the similarity floor to the lead and the
   constraints; score them with the objective;
then carry the `top_k` best molecules found so far into the next iteration, and add the scored
molecules to the database, so that later iterations can retrieve them.

Results are every valid molecule found that meets the constraints, ranked by the objective,
with its similarity to the lead, QED, SA score and logP. The same seed gives the same result.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem, RDLogger
from tqdm.auto import tqdm

from generation.errors import GenerationError, check_count, check_similarity
from generation.fusion import RetrievalGenerator
from generation.retrieval import ExemplarDatabase, molecule_properties
from molops.descriptors import QED_MAX, SA_RANGE
from molops.errors import ChemToolkitError, describe_input
from molops.objectives import Objective
from molops.similarity import SimilarityIndex

__all__ = ["Constraint", "OptimizeSettings", "optimize", "default_generator_path", "generator_can_read", "load_generator",
           "prepare_lead"]

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).with_name("weights")


def default_generator_path() -> Path:
    """The shipped RetMol generator (BART + fusion trained by this project on MOSES)."""
    return WEIGHTS / "retmol_moses.pt"


def load_generator(path: str | Path | None = None) -> RetrievalGenerator:
    """The generator at `path`, or the shipped one (with a clear error while none ships)."""
    if path is None:
        path = default_generator_path()
        if not path.exists():
            raise GenerationError(
                f"no shipped generator at {path} yet: train one with `molops train-generator "
                "generation/configs/seq2seq_moses.yaml` and `molops train-fusion generation/configs/fusion_moses.yaml`, "
                "then `python benchmarks/export_generator.py`, or pass --model FILE"
            )
    return RetrievalGenerator.load(path)


@dataclass(frozen=True)
class Constraint:
    """A hard bound on a property column ("qed", "sa_score", "logp", "penalized_logp")."""

    column: str
    minimum: float = -math.inf
    maximum: float = math.inf

    def __post_init__(self) -> None:
        if math.isnan(self.minimum) or math.isnan(self.maximum):
            raise GenerationError(f"constraint on {self.column}: a bound is NaN")
        # A bound no molecule can meet would only end the run with nothing found.
        lowest, highest = {"qed": (0.0, QED_MAX), "sa_score": SA_RANGE}.get(self.column, (-math.inf, math.inf))
        if self.minimum > min(self.maximum, highest) or self.maximum < max(self.minimum, lowest):
            raise GenerationError(
                f"constraint {self} can never be met"
                + (f": {self.column} lies in [{lowest:g}, {highest:g}]" if math.isfinite(highest) else "")
            )

    def holds(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return (values >= self.minimum) & (values <= self.maximum)

    def __str__(self) -> str:
        parts = []
        if math.isfinite(self.minimum):
            parts.append(f"{self.column} ≥ {self.minimum:g}")
        if math.isfinite(self.maximum):
            parts.append(f"{self.column} ≤ {self.maximum:g}")
        return " and ".join(parts) or f"{self.column} unconstrained"


@dataclass(frozen=True)
class OptimizeSettings:
    """Knobs of the loop.

    Attributes:
        n_iterations: rounds of retrieve-fuse-perturb-decode.
        n_samples: noisy decodes per carried molecule and iteration.
        top_k: molecules carried into the next iteration.
        k_exemplars: exemplars retrieved per carried molecule.
        noise_std: standard deviation of the Gaussian noise added to the fused states.
        min_similarity: Tanimoto (Morgan r=2) floor to the lead for every reported molecule.
        use_retrieval: False runs the same loop with no exemplars (the ablation).
        seed: seeds the noise; equal seeds give equal results.
        grammar: decode under `generation.grammar.SmilesGrammar` (False: free greedy decoding).
        goal: the objective value that meets the design criterion (e.g. QED 0.9), if there is
            one. Exemplars are then the molecules most similar to the carried one among those
            that reach the goal, as RetMol retrieves molecules satisfying the criteria; where none
            does (e.g. docking early on), among those that beat the carried molecule.
    """

    n_iterations: int = 20
    n_samples: int = 20
    top_k: int = 5
    k_exemplars: int = 10
    noise_std: float = 1.0
    min_similarity: float = 0.4
    use_retrieval: bool = True
    seed: int = 0
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)
    grammar: bool = True
    goal: float | None = None

    def __post_init__(self) -> None:
        for name in ("n_iterations", "n_samples", "top_k", "k_exemplars"):
            check_count(name, getattr(self, name))
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise GenerationError(f"noise_std must be a finite number ≥ 0, got {self.noise_std!r}")
        check_similarity("min_similarity", self.min_similarity)
        if self.goal is not None and not math.isfinite(self.goal):
            raise GenerationError(f"goal must be a finite number, got {self.goal!r}")


def prepare_lead(lead: str | Chem.Mol, generator: RetrievalGenerator) -> str:
    """The lead as the generator reads it: parent, neutral, no stereo (like MOSES).

    Raises:
        GenerationError: unparsable input, or a SMILES the generator's vocabulary cannot spell.
    """
    from molops.standardize import StandardizeOptions, standardize

    try:
        mol = standardize(lead, StandardizeOptions(canonical_tautomer=False))
    except ChemToolkitError as exc:
        shown = Chem.MolToSmiles(lead) if isinstance(lead, Chem.Mol) else lead  # None or a list too
        raise GenerationError(f"lead {describe_input(shown)}: {exc}") from None
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    try:
        ids = generator.tokenizer.encode(smiles)
    except GenerationError as exc:
        raise GenerationError(f"lead {describe_input(smiles)} cannot be read by the generator: {exc}") from None
    if len(ids) > generator.seq2seq.config.max_length:
        raise GenerationError(
            f"lead {describe_input(smiles)}: {len(ids)} tokens, more than the generator's "
            f"{generator.seq2seq.config.max_length} (MOSES molecules are at most ~55)"
        )
    return smiles


def generator_can_read(generator: RetrievalGenerator, smiles: str) -> bool:
    """True when `generator`'s tokenizer reads `smiles` within the model's maximum length."""
    try:
        return len(generator.tokenizer.encode(smiles)) <= generator.seq2seq.config.max_length
    except GenerationError:
        return False


def _canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES of a decoded string, or None when it is not a molecule.

    The canonical form must parse again: for some strained aromatic systems RDKit writes a
    SMILES it cannot kekulize on reading (e.g. ``O=c1[nH]ccsc(F)c(F)ccc2c([nH]1)=NN=C2c1cccc(F)c1``),
    and every later step (similarity, descriptors, the output file) reads the canonical form.
    """
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return None
    canonical = Chem.MolToSmiles(mol)
    return canonical if Chem.MolFromSmiles(canonical) is not None else None


#: Database neighbours scored on the fly per carried molecule for objectives with no
#: precomputed column (a multiple of k_exemplars).
NEIGHBOUR_POOL = 10


def _constraint_mask(table: pd.DataFrame, constraints) -> np.ndarray:
    allowed = np.ones(len(table), dtype=bool)
    for constraint in constraints:
        if constraint.column in table.columns:
            allowed &= constraint.holds(table[constraint.column].to_numpy())
    return allowed


def _better_exemplars(
    database: ExemplarDatabase, objective: Objective, smiles: str, value: float, settings: OptimizeSettings,
    near_lead: np.ndarray | None = None,
) -> list[str]:
    """The `k_exemplars` molecules most similar to `smiles` that beat `value` and meet the constraints.

    Exemplars should meet the design criteria (RetMol), the similarity floor to the lead among
    them: molecules with ``near_lead`` True (a mask over the database) come first, the others
    fill the remaining places. With a `settings.goal` the molecules reaching the goal are
    tried before those merely beating `value`.
    """
    bars = [(value, False)]
    if settings.goal is not None and objective.utility(np.array([value]))[0] < objective.utility(
            np.array([settings.goal]))[0]:
        bars.insert(0, (settings.goal, True))
    for bar, inclusive in bars:
        chosen = _exemplars_beyond(database, objective, smiles, bar, settings, inclusive, near_lead)
        if chosen:
            return chosen
    return []


def _exemplars_beyond(
    database: ExemplarDatabase, objective: Objective, smiles: str, value: float, settings: OptimizeSettings,
    inclusive: bool = False, preferred: np.ndarray | None = None,
) -> list[str]:
    """Up to `k_exemplars` allowed molecules most similar to `smiles` beating `value` (or equal, `inclusive`).

    Objectives with a precomputed database column (QED, pLogP, ...) filter the whole database;
    other cheap objectives (TPSA, similarity to a drug, weighted sums) score the nearest
    ``NEIGHBOUR_POOL x k`` allowed neighbours on the fly; expensive ones (docking) can only use
    the molecules this run has already scored. `preferred` rows are taken first.
    """
    table = database.properties
    threshold = objective.utility(np.array([value]))[0]
    beats = np.greater_equal if inclusive else np.greater
    allowed = _constraint_mask(table, settings.constraints)
    on_the_fly = objective.column not in table.columns and objective.cheap
    if not on_the_fly:
        column = objective.column if objective.column in table.columns else objective.name
        if column not in table.columns:
            return []
        with np.errstate(invalid="ignore"):
            allowed &= beats(objective.utility(table[column].to_numpy(dtype=float)), threshold)
    tiers = [allowed] if preferred is None else [allowed & preferred, allowed & ~preferred]
    chosen: list[str] = []
    for mask in tiers:
        wanted = settings.k_exemplars - len(chosen)
        if wanted <= 0:
            break
        if not on_the_fly:
            chosen += database.retrieve(smiles, wanted, mask)["smiles"].tolist()
            continue
        pool = database.retrieve(smiles, wanted * NEIGHBOUR_POOL, mask)["smiles"].tolist()
        if pool:
            better = beats(objective.utility(objective(pool)), threshold)
            chosen += [s for s, b in zip(pool, better) if b][:wanted]
    return chosen


def optimize(
    lead: str | Chem.Mol,
    objective: Objective | str,
    *,
    generator: RetrievalGenerator | None = None,
    database: ExemplarDatabase | None = None,
    settings: OptimizeSettings = OptimizeSettings(),
    progress: bool = True,
    stop: Callable[[list[dict]], bool] | None = None,
) -> pd.DataFrame:
    """Optimise `lead` for `objective` under the similarity floor and constraints.

    Args:
        objective: a `molops.objectives.Objective` or its name ("qed", "logp:min", ...).
        generator: default: the shipped RetMol generator (`default_generator_path`).
        database: exemplars (default: MOSES train with precomputed properties); it grows with
            the molecules generated here.
        stop: called after each iteration with the molecules found so far (constraints met),
            as rows of the returned table (dicts); True ends the loop early (e.g. the editor
            once it has enough hits, a benchmark once a lead is a success).

    Returns:
        DataFrame ranked best first: ``smiles``, the objective column, ``similarity`` (to the
        lead), ``qed``, ``sa_score``, ``logp``, ``penalized_logp``, ``iteration`` (first found);
        the lead's own values are in ``frame.attrs["lead"]``. Empty when nothing valid met
        the constraints.

    Raises:
        GenerationError: bad lead, or an objective that cannot score the lead.
    """
    if isinstance(objective, str):  # a CLI word such as "qed" or "logp:min"
        from molops.objectives import by_name

        objective = by_name(objective)
    if not isinstance(objective, Objective):
        raise GenerationError(f"objective {describe_input(objective)}: expected a molops.objectives.Objective "
                              "or its name (qed, plogp, logp:min, ...)")
    generator = generator or load_generator()
    generator.eval()
    lead_smiles = prepare_lead(lead, generator)
    if database is None and settings.use_retrieval:
        database = ExemplarDatabase.moses()
    lead_value = float(objective([lead_smiles])[0])
    if math.isnan(lead_value):
        error = objective.evaluate([lead_smiles])["error"].iloc[0]
        raise GenerationError(f"lead {describe_input(lead_smiles)}: the objective {objective.name} fails on it: {error}")
    lead_index = SimilarityIndex.from_smiles([lead_smiles], parallel=False)
    lead_properties = molecule_properties([lead_smiles]).iloc[0].to_dict()

    torch_rng = torch.Generator().manual_seed(settings.seed)
    seen = {lead_smiles}
    found: list[dict] = []
    carried = [(lead_smiles, lead_value)]
    retrieval_misses = 0  # carried molecules for which no better exemplar existed
    bar = tqdm(range(settings.n_iterations), desc=f"optimising {objective.name}", disable=not progress)
    RDLogger.DisableLog("rdApp.*")
    try:
        for iteration in bar:
            inputs = [s for s, _ in carried]
            exemplars = [[] for _ in carried]
            if settings.use_retrieval and database is not None:
                # The database grows every iteration: its similarities to the lead are refreshed.
                near_lead = database.similarities(lead_smiles) >= settings.min_similarity
                for position, (s, value) in enumerate(carried):
                    exemplars[position] = _better_exemplars(database, objective, s, value, settings, near_lead)
                    # Nothing better in the database: this molecule is decoded from its own
                    # states alone (the fusion module passes them through unchanged).
                    retrieval_misses += not exemplars[position]
            with torch.no_grad():
                fused, mask = generator.fused_states(inputs, exemplars, settings.k_exemplars)
                states = fused.repeat_interleave(settings.n_samples, dim=0)
                masks = mask.repeat_interleave(settings.n_samples, dim=0)
                noise = torch.randn(states.shape, generator=torch_rng) * settings.noise_std
                states = states + noise * masks[..., None]
                decoded = [out[0] for out in generator.seq2seq.decode(states, masks, grammar=settings.grammar)]
            fresh = []
            for text in decoded:
                smiles = _canonical(text)
                if smiles is not None and smiles not in seen:
                    seen.add(smiles)
                    # RDKit's canonical form can need tokens the generator never learnt (e.g.
                    # [SH] of a hypervalent sulfur): such a molecule could not be carried on.
                    if generator_can_read(generator, smiles):
                        fresh.append(smiles)
            if fresh:
                sims = np.array([float(lead_index.similarities(s)[0]) for s in fresh])
                properties = molecule_properties(fresh)
                keep = sims >= settings.min_similarity
                for constraint in settings.constraints:
                    if constraint.column in properties.columns:
                        keep &= constraint.holds(properties[constraint.column].to_numpy())
                kept = [s for s, k in zip(fresh, keep) if k]
                values = objective(kept) if kept else np.array([])
                for smiles, value, sim, (_, props) in zip(
                    kept, values, sims[keep], properties[keep].iterrows()
                ):
                    if not math.isnan(value):
                        found.append({"smiles": smiles, objective.name: float(value), "similarity": sim,
                                      **props.to_dict(), "iteration": iteration + 1})
                if database is not None and kept:
                    rows = properties[keep].reset_index(drop=True)
                    rows[objective.name] = values
                    database.add(kept, rows)
            pool = sorted(found, key=lambda r: -objective.utility(np.array([r[objective.name]]))[0])
            carried = [(r["smiles"], r[objective.name]) for r in pool[: settings.top_k]] or [(lead_smiles, lead_value)]
            if pool:
                bar.set_postfix(best=f"{pool[0][objective.name]:.3f}", found=len(found))
            if stop is not None and stop(found):
                break
    finally:
        RDLogger.EnableLog("rdApp.*")
        bar.close()
    columns = list(dict.fromkeys(  # an objective such as qed is also a property column
        ["smiles", objective.name, "similarity", "qed", "sa_score", "logp", "penalized_logp", "iteration"]))
    frame = pd.DataFrame(found, columns=columns)
    if not frame.empty:
        order = np.argsort(-objective.utility(frame[objective.name].to_numpy()), kind="stable")
        frame = frame.iloc[order].reset_index(drop=True)
    frame.attrs["lead"] = {"smiles": lead_smiles, objective.name: lead_value, **lead_properties}
    frame.attrs["objective"] = objective.description or objective.name
    frame.attrs["retrieval_misses"] = retrieval_misses
    return frame
