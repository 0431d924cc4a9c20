"""Nearest-neighbour search over the MOSES training set: molops vs a naive RDKit loop.

Both sides fingerprint the same library (Morgan r=2, 2048 bits) with the same Dask map,
then answer the same queries (MOSES test molecules) for the top-k neighbours:
- molops: `SimilarityIndex` (packed uint64 bits, vectorised AND + popcount);
- RDKit: a list of ExplicitBitVect and ``DataStructs.BulkTanimotoSimilarity`` per query,
  then a top-k sort, i.e. what one writes without an index.
The top-k similarities of both are checked to agree exactly.

Run:  .venv/bin/python benchmarks/similarity_search.py [--n-queries 20] [--library-size N]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import numpy as np
from rdkit import DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molops.data import moses_smiles
from molops.distributed import map_items
from molops.io import to_mol
from molops.similarity import SimilarityIndex, morgan_fingerprint

RESULTS = Path(__file__).parent / "results" / "similarity_search.md"


def rdkit_fingerprint_chunk(smiles: list[str]) -> list[bytes]:
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    out = []
    for text in smiles:
        try:
            out.append(generator.GetFingerprint(to_mol(text)).ToBinary())
        except Exception:  # noqa: BLE001 - same skip rule as the index
            continue
    return out


def build_rdkit(smiles: list[str], chunk: int = 50_000) -> list[DataStructs.ExplicitBitVect]:
    chunks = [smiles[i : i + chunk] for i in range(0, len(smiles), chunk)]
    done = map_items(rdkit_fingerprint_chunk, chunks, max_in_flight=4)
    return [DataStructs.ExplicitBitVect(b) for blob in done["result"] for b in blob]


def rdkit_top_k(query: str, fps: list, k: int) -> np.ndarray:
    sims = np.array(DataStructs.BulkTanimotoSimilarity(morgan_fingerprint(query), fps))
    top = np.argsort(-sims, kind="stable")[:k]
    return sims[top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-queries", type=int, default=20)
    parser.add_argument("--library-size", type=int, default=None, help="default: all 1,584,663")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    library = moses_smiles("train").tolist()[: args.library_size]
    queries = moses_smiles("test").iloc[: args.n_queries].tolist()
    print(f"library: {len(library):,} MOSES training molecules; {len(queries)} MOSES test queries; k={args.k}")

    start = time.perf_counter()
    index = SimilarityIndex.from_smiles(library, parallel=True)
    molops_build = time.perf_counter() - start
    start = time.perf_counter()
    fps = build_rdkit(library)
    rdkit_build = time.perf_counter() - start
    assert len(fps) == len(index), (len(fps), len(index))

    index.search(queries[0], k=args.k)  # warm caches on both sides once
    rdkit_top_k(queries[0], fps, args.k)
    molops_times, rdkit_times = [], []
    for query in queries:
        start = time.perf_counter()
        hits = index.search(query, k=args.k)
        molops_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        expected = rdkit_top_k(query, fps, args.k)
        rdkit_times.append(time.perf_counter() - start)
        np.testing.assert_allclose(hits["similarity"].to_numpy(), expected, atol=1e-6)

    molops_ms, rdkit_ms = 1e3 * np.array(molops_times), 1e3 * np.array(rdkit_times)
    rows = [
        ("molops SimilarityIndex", molops_build, np.median(molops_ms), np.percentile(molops_ms, 95), index.fingerprints.nbytes / 2**20),
        ("RDKit BulkTanimotoSimilarity loop", rdkit_build, np.median(rdkit_ms), np.percentile(rdkit_ms, 95), float("nan")),
    ]
    lines = [
        f"Similarity search, {len(index):,} molecules, {len(queries)} queries, top-{args.k} "
        f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores)",
        "",
        "| method | build (s) | query median (ms) | query p95 (ms) | fingerprint memory (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, build, median, p95, memory in rows:
        lines.append(f"| {name} | {build:.1f} | {median:.1f} | {p95:.1f} | {memory:.0f} |")
    lines += [
        "",
        f"speed-up per query (median): {np.median(rdkit_ms) / np.median(molops_ms):.1f}x; "
        f"top-{args.k} similarities identical for all queries",
        f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB",
    ]
    text = "\n".join(lines)
    print(text)
    if args.library_size is None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n\nCommand: `.venv/bin/python benchmarks/similarity_search.py`\n")


if __name__ == "__main__":
    main()
