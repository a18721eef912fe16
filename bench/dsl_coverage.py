"""Coverage of the DSL intervals on a synthetic population with a known, biased model.

    python bench/dsl_coverage.py --reps 2000
    python bench/dsl_coverage.py --reps 2000 --json /tmp/dsl-coverage.json

Three groups with known shares of segments with a mention and known stance mixes; a model that
errs differently in each group (false positives in A, missed segments in B, stance flips), so
the estimates from the predictions alone are biased. Each repetition draws a population of
``--segments`` segments, a stratified sample of ``--coded`` (strata: group x predicted
has-mention, proportional and equal allocation) and computes the DSL estimates through the
sums path Spark feeds. Two variants: a fresh population per repetition with the
superpopulation values as truth, and one fixed finite population whose own means are the
truth. The simulation itself is ``group_appeal_spark.lib.validation.simulation.simulate``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # a source checkout: the folder holding group_appeal_spark/

from group_appeal_spark.lib.validation.dsl import PUBLISHED_MEASURES
from group_appeal_spark.lib.validation.simulation import simulate


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(result: dict, title: str) -> None:
    """One line per allocation, group and measure, then the coverage per measure over all groups."""
    print(f"\n## {title}")
    cfg = result["config"]
    print(f"reps={cfg['reps']} segments={cfg['n_segments']} coded={cfg['n_coded']} seed={cfg['seed']}")
    print(f"{'allocation':13s}{'group':6s}{'measure':31s}{'truth':>8s}{'cov DSL':>9s}{'cov pred':>9s}"
          f"{'bias DSL':>10s}{'bias pred':>10s}{'width DSL':>10s}{'se/sd':>7s}{'null':>6s}")
    for r in result["rows"]:
        ratio = r["mean_se_dsl"] / r["sd_dsl"] if r["sd_dsl"] else None
        print(f"{r['allocation']:13s}{r['group']:6s}{r['measure']:31s}{r['truth']:8.4f}"
              f"{_fmt(r['coverage_dsl'], '9.3f')}{_fmt(r['coverage_predicted'], '9.3f')}"
              f"{_fmt(r['bias_dsl'], '+10.4f')}{_fmt(r['bias_predicted'], '+10.4f')}"
              f"{_fmt(r['mean_width_dsl'], '10.4f')}{_fmt(ratio, '7.2f')}{r['n_null']:6d}")
    print("\ncoverage of the DSL intervals per measure, all groups:")
    for allocation in cfg["allocations"]:
        cells = []
        for measure in PUBLISHED_MEASURES:
            rows = [r for r in result["rows"] if r["allocation"] == allocation and r["measure"] == measure]
            weights = [r["n_valid"] for r in rows]
            cov = sum(r["coverage_dsl"] * w for r, w in zip(rows, weights) if w) / max(sum(weights), 1)
            cells.append(f"{measure} {cov:.3f}")
        print(f"  {allocation:13s}" + ", ".join(cells))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--segments", type=int, default=20_000, help="segments per population")
    parser.add_argument("--coded", type=int, default=600, help="coded segments per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    out = {}
    for variant, finite in (("superpopulation", False), ("finite_population", True)):
        start = time.perf_counter()
        out[variant] = simulate(args.reps, n_segments=args.segments, n_coded=args.coded, finite=finite,
                                seed=args.seed)
        out[variant]["seconds"] = round(time.perf_counter() - start, 2)
        print_table(out[variant], f"{variant} ({out[variant]['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
