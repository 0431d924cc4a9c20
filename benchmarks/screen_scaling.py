"""Screening throughput with 1 and 2 Dask workers, and memory as the library grows.

1. Scaling: ``--n`` MOSES test molecules (fixed sample) screened with filters (Lipinski,
   PAINS), descriptors and docking of the top ``--dock-top`` at exhaustiveness 1 into DRD2, on
   a LocalCluster of 1 and then 2 worker processes (fresh output each). Prints molecules/second
   of the funnel (standardise → descriptors → filters) and docked ligands/second, the parallel
   efficiency (speed-up / workers), and peak memory (resident set of the driver and its
   workers, sampled every 0.2 s).
2. Prediction: the first ``--predict-n`` of that sample with HOMO-LUMO gap prediction (the
   orbital network, ~4 s per predicted MOSES molecule on one core), 1 and 2 workers, same columns.
3. Streaming: the non-docking stages without prediction on ``--n`` and ``--memory-n`` molecules
   (MOSES train), peak memory of each: flat memory means the library is never held whole.

Run:  .venv/bin/python benchmarks/screen_scaling.py [--n 10000] [--predict-n 400] [--memory-n 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil

from molops.data import moses_smiles
from molops.screening import ScreenSettings, screen
from quantum_features.predict import default_model_paths

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "screen_scaling.md"


class PeakMemory:
    """Peak resident memory (MiB) of this process and all its children while active."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def write_library(smiles, path: Path) -> Path:
    with path.open("w") as handle:
        for i, s in enumerate(smiles):
            handle.write(f"{s} mol{i}\n")
    return path


def scaling_rows(library: Path, out_dir: Path, settings: ScreenSettings) -> list[tuple]:
    """Screen `library` on 1 and then 2 local workers (fresh output each)."""
    rows = []
    for workers in (1, 2):
        with PeakMemory() as memory:
            summary = screen(library, out_dir / f"w{workers}" / "screen.parquet", settings, n_workers=workers,
                             progress=True)
        funnel = summary.records / summary.stage_seconds["funnel"]
        docking = summary.docked / summary.stage_seconds["docking"] if summary.docked else float("nan")
        rows.append((workers, funnel, docking, summary.seconds, memory.peak, summary))
        print(f"{workers} worker(s): {summary.as_text()}", flush=True)
    return rows


def scaling_table(rows: list[tuple], with_docking: bool) -> list[str]:
    head = "| workers | funnel (molecules/s) |" + (" docking (ligands/s) |" if with_docking else "")
    lines = [head + " total (s) | parallel efficiency (funnel) | peak memory (MiB) |",
             "|---" * (5 + with_docking) + "|"]
    for workers, funnel, docking, total, peak, _ in rows:
        efficiency = funnel / rows[0][1] / workers
        lines.append(f"| {workers} | {funnel:.2f} |" + (f" {docking:.3f} |" if with_docking else "")
                     + f" {total:.0f} | {efficiency:.2f} | {peak:.0f} |")
    return lines + ["", f"Counts (2 workers): {rows[-1][5].as_text()}.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--predict-n", type=int, default=400,
                        help="molecules (the first of the --n sample) screened with gap prediction; 0: skip")
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument("--dock-top", type=int, default=50)
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--predict-chunk-size", type=int, default=50)
    args = parser.parse_args()
    lines = ["# Screening throughput and memory", "",
             f"Command: `.venv/bin/python benchmarks/screen_scaling.py --n {args.n} --predict-n {args.predict_n} "
             f"--memory-n {args.memory_n}` (2-core machine, LocalCluster of single-threaded worker processes)", ""]

    def save() -> None:
        RESULTS.write_text("\n".join(lines) + "\n")  # after every section: a long run keeps what it measured

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sample = moses_smiles("test").sample(args.n, random_state=0)
        library = write_library(sample, tmp / "library.smi")
        settings = ScreenSettings(target="DRD2", filters=("lipinski", "pains"), dock_top=args.dock_top,
                                  exhaustiveness=1, chunk_size=args.chunk_size)
        rows = scaling_rows(library, tmp / "funnel", settings)
        lines += [f"1. {args.n:,} MOSES test molecules: standardisation, filters (Lipinski, PAINS), descriptors; "
                  f"docking of the top {args.dock_top} by QED at exhaustiveness 1 (DRD2).", ""]
        lines += scaling_table(rows, with_docking=True)
        save()

        if args.predict_n:
            # The orbital network costs ~4 s per MOSES molecule (an HF/STO-3G calculation each), so on
            # 2 cores 10,000 predictions take hours per worker count; its scaling is measured on a
            # subset of the same sample, with smaller chunks so that 2 workers share the load evenly.
            subset = write_library(sample.iloc[: args.predict_n], tmp / "predict.smi")
            predict = ScreenSettings(filters=("lipinski", "pains"), predict=("gap",), dock_top=0,
                                     chunk_size=args.predict_chunk_size)
            rows = scaling_rows(subset, tmp / "predict", predict)
            per_molecule = 1 / rows[-1][1]
            lines += [f"2. The first {args.predict_n:,} of those molecules with HOMO-LUMO gap prediction (orbital "
                      f"network ensemble: conformer, HF/STO-3G features, {len(default_model_paths())} networks) for "
                      "those passing the filters; no docking.", ""]
            lines += scaling_table(rows, with_docking=False)
            lines += [f"At this rate {args.n:,} molecules with prediction take {args.n * per_molecule / 3600:.1f} h on "
                      "2 workers; prediction dominates the funnel's cost.", ""]
            save()

        memory_rows = []
        stream = ScreenSettings(filters=("lipinski", "pains"), chunk_size=args.chunk_size)
        train = moses_smiles("train")
        for n in (args.n, args.memory_n):
            path = write_library(train.iloc[:n], tmp / f"stream_{n}.smi")
            with PeakMemory() as memory:
                summary = screen(path, tmp / f"stream_{n}" / "screen.parquet", stream, n_workers=2, progress=True)
            memory_rows.append((n, summary.records / summary.stage_seconds["funnel"], memory.peak))
        lines += [f"{3 if args.predict_n else 2}. Streaming (filters + descriptors, no prediction or docking, "
                  "2 workers, MOSES train):", "",
                  "| molecules | molecules/s | peak memory (MiB) |", "|---|---|---|"]
        lines += [f"| {n:,} | {rate:.1f} | {peak:.0f} |" for n, rate, peak in memory_rows]
    save()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
