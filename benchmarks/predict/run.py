"""Speed of clm.predict against lifetimes: one command, one table.

    .venv/bin/python benchmarks/predict/run.py            # everything (~2-4 minutes)
    .venv/bin/python benchmarks/predict/run.py --quick    # skip the 10M scenario

Each scenario runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own.
lifetimes 0.11.3 runs side by side in ``benchmarks/.venv-lifetimes`` (created on first use,
with the old pins it needs) on the very same CDNOW summary, and the table prints the ratio.
Timings include compressing the summary (the library's trick), not building it, except
where the scenario says so. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("CLM_SHARED_DATA", REPO.parent / "shared" / "data"))
LIFETIMES_VENV = REPO / "benchmarks" / ".venv-lifetimes"
LIFETIMES_PINS = ["lifetimes==0.11.3", "pandas<2", "numpy<1.24", "scipy<1.11", "autograd<1.7"]

# Daily resolution in weeks, customers acquired over 12 weeks, observed to week 39.
SIM_BG = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
SIM_PARETO = {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}
SIM_BGBB = {"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.78}
SIM_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def cdnow_summary() -> pd.DataFrame:
    from clm.predict import rfm_summary

    log = pd.read_csv(SHARED / "CDNOW_master.txt", sep=r"\s+", dtype={"date": str})
    log["date"] = pd.to_datetime(log["date"], format="%Y%m%d")
    return rfm_summary(log, "customer_id", "date", "dollar_value", end="1997-09-30", unit="W")


def simulated_ages(n: int, seed: int) -> np.ndarray:
    return 39.0 - np.random.default_rng(seed).integers(0, 84, n) / 7.0


# -- scenarios (each runs in a child process) ------------------------------------------------
def scenario_cdnow() -> dict[str, Any]:
    from clm.predict import BetaGeo, GammaGamma, ModifiedBetaGeo, ParetoNBD, compress

    summary, build = timed(cdnow_summary)
    out: dict[str, Any] = {"customers": len(summary), "summary_s": build}
    # Warm-up on 300 rows (lazy imports, first-call costs), as the lifetimes script does.
    warm = summary.iloc[:300]
    warm_rows = compress(warm)
    for model_class in (BetaGeo, ModifiedBetaGeo, ParetoNBD):
        model_class().fit(warm_rows, weights=warm_rows["weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GammaGamma().fit(warm[warm["monetary_value"] > 0])
    for name, model in [
        ("BG/NBD", BetaGeo),
        ("MBG/NBD", ModifiedBetaGeo),
        ("Pareto/NBD", ParetoNBD),
    ]:

        def fit(model: Any = model) -> Any:
            rows = compress(summary)
            return model().fit(rows, weights=rows["weight"])

        fitted, seconds = timed(fit)
        out[name] = {"fit_s": seconds, "params": fitted.params_, "ll": fitted.log_likelihood_}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the independence check may warn on the full log
        # CDNOW has a few $0 transactions; Gamma-Gamma needs positive spend (lifetimes too).
        buyers = summary[summary["monetary_value"] > 0]
        fitted, seconds = timed(lambda: GammaGamma().fit(buyers))
    out["Gamma-Gamma"] = {"fit_s": seconds, "params": fitted.params_}
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _score(model: Any, spend: Any, summary: pd.DataFrame) -> dict[str, float]:
    from clm.predict import customer_lifetime_value

    _, alive_s = timed(model.p_alive, summary)
    _, clv_s = timed(customer_lifetime_value, model, spend, summary, 12, 0.01, "M", "W")
    n = len(summary)
    return {"p_alive_per_s": n / alive_s, "clv_per_s": n / clv_s, "score_s": alive_s + clv_s}


def scenario_simulated(model_name: str, n: int) -> dict[str, Any]:
    from clm.predict import (
        BetaGeo,
        BetaGeoBetaBinom,
        GammaGamma,
        ModifiedBetaGeo,
        ParetoNBD,
        compress,
    )
    from clm.predict import simulate as sim

    ages = simulated_ages(n, seed=1)
    if model_name in ("BG/NBD", "MBG/NBD"):
        simulator = (
            sim.simulate_beta_geo if model_name == "BG/NBD" else sim.simulate_modified_beta_geo
        )
        summary = simulator(n, ages, **SIM_BG, seed=2, resolution=1 / 7)
        model_class: Any = BetaGeo if model_name == "BG/NBD" else ModifiedBetaGeo
        columns: tuple[str, ...] = ("frequency", "recency", "T")
    elif model_name == "Pareto/NBD":
        summary = sim.simulate_pareto_nbd(n, ages, **SIM_PARETO, seed=2, resolution=1 / 7)
        model_class, columns = ParetoNBD, ("frequency", "recency", "T")
    elif model_name == "BG/BB":
        summary = sim.simulate_beta_geo_beta_binom(n, 12, **SIM_BGBB, seed=2)
        model_class, columns = BetaGeoBetaBinom, ("frequency", "recency", "n_periods")
    else:  # Gamma-Gamma on the repeat buyers of a BG/NBD population
        base = sim.simulate_beta_geo(n, ages, **SIM_BG, seed=2, resolution=1 / 7)
        spend = sim.simulate_gamma_gamma(base["frequency"], **SIM_GG, seed=3)
        summary = base.assign(monetary_value=np.round(spend, 2))
        model_class, columns = GammaGamma, ()
    rss_data = peak_rss_mib()

    def fit() -> tuple[Any, int]:
        if not columns:
            return model_class(independence_threshold=None).fit(summary), len(summary)
        rows = compress(summary, columns=columns)
        return model_class().fit(rows, weights=rows["weight"]), len(rows)

    (fitted, distinct), fit_s = timed(fit)
    out: dict[str, Any] = {
        "customers": n,
        "distinct_rows": distinct,
        "fit_s": fit_s,
        "params": fitted.params_,
        "rss_after_data_mib": rss_data,
    }
    if model_name in ("BG/NBD", "Pareto/NBD"):
        spend_model = GammaGamma()
        spend_model.params_ = dict(SIM_GG)
        scored = summary.assign(monetary_value=0.0)
        out.update(_score(fitted, spend_model, scored))
    out["peak_rss_mib"] = peak_rss_mib()
    return out


# -- lifetimes, in its own interpreter ---------------------------------------------------------
LIFETIMES_SCRIPT = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter, GammaGammaFitter
s = pd.read_csv(sys.argv[1])
out = {}
w = s.iloc[:300]  # warm-up (autograd tracing, lazy imports), as for clm
BetaGeoFitter().fit(w["frequency"], w["recency"], w["T"])
ParetoNBDFitter().fit(w["frequency"], w["recency"], w["T"])
wr = w[(w["frequency"] > 0) & (w["monetary_value"] > 0)]
GammaGammaFitter().fit(wr["frequency"], wr["monetary_value"])
def record(name, started, model):
    params = {k: float(v) for k, v in model.params_.items()}
    out[name] = {"fit_s": time.perf_counter() - started, "params": params}
for name, fitter in [("BG/NBD", BetaGeoFitter), ("Pareto/NBD", ParetoNBDFitter)]:
    t = time.perf_counter()
    record(name, t, fitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"]))
r = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
t = time.perf_counter()
record("Gamma-Gamma", t, GammaGammaFitter().fit(r["frequency"], r["monetary_value"]))
print(json.dumps(out))
"""


def ensure_lifetimes() -> Path | None:
    python = LIFETIMES_VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-lifetimes (one-off) ...", file=sys.stderr)
        try:
            subprocess.run(["python3.11", "-m", "venv", str(LIFETIMES_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", *LIFETIMES_PINS], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"lifetimes unavailable: {exc}", file=sys.stderr)
            return None
    return python


def run_lifetimes(summary: pd.DataFrame) -> dict[str, Any] | None:
    python = ensure_lifetimes()
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdnow_summary.csv"
        summary.to_csv(path)
        script = Path(tmp) / "fit.py"
        script.write_text(LIFETIMES_SCRIPT)
        done = subprocess.run(
            [str(python), str(script), str(path)], capture_output=True, text=True, check=False
        )
    if done.returncode:
        print(done.stderr, file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- driver ------------------------------------------------------------------------------------
def child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"scenario {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10M-customer scenario")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind = args.child[0]
        result = (
            scenario_cdnow() if kind == "cdnow" else scenario_simulated(kind, int(args.child[1]))
        )
        print(json.dumps(result))
        return

    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    cdnow = child(["cdnow"])
    peer = run_lifetimes(cdnow_summary())
    rows = []
    for name in ("BG/NBD", "MBG/NBD", "Pareto/NBD", "Gamma-Gamma"):
        ours = cdnow[name]["fit_s"]
        theirs = peer.get(name, {}).get("fit_s") if peer else None
        rows.append(
            {
                "scenario": f"CDNOW full ({cdnow['customers']:,} customers)",
                "model": name,
                "fit_s": ours,
                "lifetimes_fit_s": theirs,
                "speed-up": (theirs / ours) if theirs else None,
                "peak_rss_mib": cdnow["peak_rss_mib"],
            }
        )
    plan = [
        ("BG/NBD", 1_000_000),
        ("MBG/NBD", 1_000_000),
        ("Pareto/NBD", 1_000_000),
        ("BG/BB", 1_000_000),
        ("Gamma-Gamma", 1_000_000),
    ]
    if not args.quick:
        plan.append(("BG/NBD", 10_000_000))
    for name, n in plan:
        result = child([name, str(n)])
        rows.append(
            {
                "scenario": f"simulated {n / 1e6:g}M ({result['distinct_rows']:,} distinct rows)",
                "model": name,
                "fit_s": result["fit_s"],
                "score_s": result.get("score_s"),
                "p_alive_per_s": result.get("p_alive_per_s"),
                "clv_per_s": result.get("clv_per_s"),
                "peak_rss_mib": result["peak_rss_mib"],
            }
        )
    table = pd.DataFrame(rows)
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.3g}".format
    ):
        print(table.to_string(index=False))
    if peer:
        print("\nlifetimes estimates on the same summary (sanity):")
        for name in ("BG/NBD", "Pareto/NBD", "Gamma-Gamma"):
            print(
                f"  {name:12s} lifetimes {peer[name]['params']}\n  {'':12s} clm       "
                f"{ {k: round(v, 4) for k, v in cdnow[name]['params'].items()} }"
            )


if __name__ == "__main__":
    main()
