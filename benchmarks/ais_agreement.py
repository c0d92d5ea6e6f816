"""Multi-path AIS against exact log Z on 21 enumerable RBMs: is any estimate confidently
wrong?

For each model of ``boltzkit.estimate.zoo.estimator_zoo`` (random weights up to sharply
multimodal, isolated prototype modes, CD-1-trained; 100 visible units by default, up to
14 hidden, so log Z is exact): every path's estimate and ESS, the conservative estimate,
the data bound, the verdict and the seconds, for each schedule length. "Confidently
wrong" = the exact value lies more than 0.1 nats outside the reported interval while
the verdict is reliable. The single base-rate path (what ``evaluate`` reported before)
is judged the same way, with its ESS >= 10 % of runs as its only check.

    python benchmarks/ais_agreement.py              # 1,000 and 14,501 betas, 100 runs
    python benchmarks/ais_agreement.py --visible 784
"""

from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from boltzkit.estimate.exact import exact_log_partition  # noqa: E402
from boltzkit.estimate.multipath import multipath_log_partition  # noqa: E402
from boltzkit.estimate.zoo import estimator_zoo  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visible", type=int, default=100)
    parser.add_argument("--betas", type=int, nargs="+", default=[1000, 14501])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, model, data in estimator_zoo(n_visible=args.visible):
        exact = exact_log_partition(model)
        for betas in args.betas:
            started = time.perf_counter()
            multi = multipath_log_partition(model, data, betas, args.runs, torch.Generator().manual_seed(0))
            seconds = time.perf_counter() - started
            low, high = multi.interval
            inside = low - 0.1 <= exact <= high + 0.1
            single = multi.paths["base rate"]
            single_trusted = single.ess >= 0.1 * single.runs
            single_inside = single.log_z_low - 0.1 <= exact <= single.log_z_high + 0.1
            rows.append({
                "model": name, "betas": betas, "exact": exact, "estimate": multi.log_z,
                "paths": {k: {"log_z": v.log_z, "ess": v.ess} for k, v in multi.paths.items()},
                "data_bound": multi.data_bound, "reliable": multi.reliable, "verdict": multi.verdict,
                "confidently_wrong": multi.reliable and not inside,
                "single_path_confidently_wrong": single_trusted and not single_inside,
                "seconds": seconds})
            r = rows[-1]
            paths = " ".join(f"{v['log_z']:8.2f}" for v in r["paths"].values())
            print(f"{name:30s} {betas:6d} exact {exact:8.2f} paths {paths} -> {r['estimate']:8.2f} "
                  f"{'reliable  ' if r['reliable'] else 'UNRELIABLE'} "
                  f"{'CONFIDENTLY WRONG' if r['confidently_wrong'] else ''}"
                  f"{' (single path: confidently wrong)' if r['single_path_confidently_wrong'] else ''} "
                  f"{seconds:5.1f} s", flush=True)
    summary = {b: {"models": sum(r["betas"] == b for r in rows),
                   "flagged": sum(r["betas"] == b and not r["reliable"] for r in rows),
                   "confidently_wrong": sum(r["betas"] == b and r["confidently_wrong"] for r in rows),
                   "single_path_confidently_wrong": sum(r["betas"] == b and r["single_path_confidently_wrong"]
                                                        for r in rows)}
               for b in args.betas}
    for b, s in summary.items():
        print(f"{b} betas: {s['models']} models, {s['flagged']} flagged unreliable, "
              f"{s['confidently_wrong']} confidently wrong (single base-rate path: "
              f"{s['single_path_confidently_wrong']})")
    out = Path(args.out or RESULTS / f"ais_agreement_{args.visible}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": f"python benchmarks/ais_agreement.py --visible {args.visible}",
                               "runs": args.runs, "summary": summary, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
