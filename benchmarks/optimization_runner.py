"""Shared runner of the molecule-optimisation benchmarks (QED, penalised logP).

For every lead and method it records one JSON line in
``benchmarks/results/<name>.<generator hash>.<settings>.journal.jsonl`` (best objective value,
similarity, success, seconds), so that the long runs (hundreds of leads,
about a minute each on 2 cores) spread over several sessions: calling the script again skips
finished (lead, method) pairs. The journal is named after the generator file's hash and the
loop settings, so results of other weights or settings are never mixed in. Methods:
- ``retmol``: `generation.optimize` with retrieval from MOSES;
- ``no-retrieval``: the same loop without exemplars (ablation);
- ``best-of-database``: no generation; the best MOSES training molecule that meets the
  similarity floor (and constraints), found by scanning the whole database.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from molops.distributed import drop_partial_line, read_journal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("retmol", "no-retrieval", "best-of-database")


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """``--methods`` and ``--reverse``: split one benchmark over processes sharing its journal."""
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of the methods (e.g. to run them in two processes)")
    parser.add_argument("--reverse", action="store_true",
                        help="take the leads last first (a second process on the same journal meets the first halfway)")


def generator_digest(path: Path | None = None) -> str:
    """First 10 hex digits of the SHA-256 of a generator file (default: the shipped one)."""
    from generation.optimize import default_generator_path

    return hashlib.sha256(Path(path or default_generator_path()).read_bytes()).hexdigest()[:10]


def journal_path(name: str, settings_kwargs: dict, generator_path: Path | None = None) -> Path:
    """Where `run` journals benchmark `name` for a generator (default: shipped) and these settings."""
    from generation.grammar import GRAMMAR_VERSION

    settings = "-".join(f"{key}{value}" for key, value in sorted(settings_kwargs.items()))
    # Results of one weights file under another decoding constraint are another experiment.
    return RESULTS / f"{name}.{generator_digest(generator_path)}.{settings}-grammarv{GRAMMAR_VERSION}.journal.jsonl"


def _finished(journal: Path) -> set[tuple[str, str, float]]:
    """(lead, method, similarity floor) of every row in the journal."""
    return {(r["lead"], r["method"], r["min_similarity"]) for r in read_journal(journal)}


def _unique(rows: list[dict]) -> pd.DataFrame:
    """Journal rows, the first of each (lead, method, floor) when two processes raced on one."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.drop_duplicates(["lead", "method", "min_similarity"], ignore_index=True)


def run(
    name: str,
    leads: list[str],
    objective_factory: Callable[[], object],
    column: str,
    min_similarities: list[float],
    success: Callable[[float, float, float], bool],
    settings_kwargs: dict,
    methods: tuple[str, ...] = METHODS,
    max_minutes: float | None = None,
    stop_at_success: bool = False,
    generator_path: Path | None = None,
    journal_tag: str = "",
) -> pd.DataFrame:
    """Run every (lead, method, similarity floor) not yet in the journal; return all rows.

    `success(best_value, lead_value, similarity)` decides a lead's success for one method.
    `stop_at_success` ends a lead's loop at the first successful molecule, as a chemist would
    for a pass/fail task: the success rate is unchanged, the time becomes time-to-success and
    the best value the first one past the bar (it is part of the journal's name).
    `generator_path` runs another generator file than the shipped one (its hash names the journal);
    `journal_tag` is added to the journal's name (a code variant under test).
    """
    from generation.errors import GenerationError
    from generation.optimize import OptimizeSettings, load_generator, optimize
    from generation.retrieval import ExemplarDatabase, moses_properties
    from molops.library import load_library_index

    journal = journal_path(name, {**settings_kwargs, **({"stop": "success"} if stop_at_success else {}),
                                   **({"tag": journal_tag} if journal_tag else {})}, generator_path)
    done = _finished(journal)
    generator = load_generator(generator_path)
    index, base_properties = load_library_index("moses"), moses_properties()
    database = ExemplarDatabase(index, base_properties)
    started = time.perf_counter()
    drop_partial_line(journal)  # a row cut off by a kill would swallow the next one
    with open(journal, "a") as handle:
        for lead in leads:
            for min_similarity in min_similarities:
                for method in methods:
                    if (lead, method, min_similarity) in done:
                        continue
                    # Another process may share the journal (methods or lead orders split over
                    # cores): reread what it has finished before starting an item.
                    done |= _finished(journal)
                    if (lead, method, min_similarity) in done:
                        continue
                    if max_minutes is not None and (time.perf_counter() - started) / 60 > max_minutes:
                        return _unique(read_journal(journal))
                    objective = objective_factory()
                    tick = time.perf_counter()
                    error = None
                    if method == "best-of-database":
                        sims = index.similarities(lead)
                        values = base_properties[column].to_numpy(dtype=float)
                        lead_value = float(objective([lead])[0])
                        ok = sims >= min_similarity
                        best = float(np.nanmax(values[ok])) if ok.any() else float("nan")
                        best_sim = float(sims[ok][np.nanargmax(values[ok])]) if ok.any() else float("nan")
                    else:
                        # A fresh database per lead: molecules generated for one lead must not
                        # help the next one.
                        fresh = ExemplarDatabase(index, base_properties) if method == "retmol" else None
                        settings = OptimizeSettings(min_similarity=min_similarity,
                                                    use_retrieval=method == "retmol", **settings_kwargs)
                        stop = None
                        if stop_at_success:
                            lead_value = float(objective([lead])[0])

                            def stop(found: list[dict], name: str = objective.name, floor: float = min_similarity,
                                     lead_value: float = lead_value) -> bool:
                                return any(row["similarity"] >= floor and success(row[name], lead_value, row["similarity"])
                                           for row in found)
                        try:
                            frame = optimize(lead, objective, generator=generator, database=fresh, settings=settings,
                                             progress=False, stop=stop)
                        except GenerationError as exc:
                            # e.g. a lead with a token the generator never learnt: recorded as this
                            # method's failure on the lead, and the run carries on.
                            error = str(exc)
                            lead_value, best, best_sim = float(objective([lead])[0]), float("nan"), float("nan")
                        else:
                            lead_value = float(frame.attrs["lead"][objective.name])
                            best = float(frame[objective.name].iloc[0]) if len(frame) else float("nan")
                            best_sim = float(frame["similarity"].iloc[0]) if len(frame) else float("nan")
                    row = {"lead": lead, "method": method, "min_similarity": min_similarity,
                           "lead_value": lead_value, "best_value": best, "best_similarity": best_sim,
                           "success": bool(not np.isnan(best) and success(best, lead_value, best_sim)),
                           "seconds": time.perf_counter() - tick, **({"error": error} if error else {})}
                    handle.write(json.dumps(row) + "\n")
                    handle.flush()
    return _unique(read_journal(journal))
