"""The evaluation report: per-condition metrics with bootstrap intervals, paired differences, verdict agreement
between backends, the settings and versions, every per-image verdict; and the table printed on the terminal."""

from __future__ import annotations

import platform
from dataclasses import asdict
from importlib import metadata

from .alignment import KINDS
from .scoring import LOWER_IS_BETTER, METRICS
from .stats import LEVEL, bootstrap_paired_difference, bootstrap_ratio

ALIGNMENT_METRICS = tuple(f"gate_{m}_{k}" for m in ("iou", "inside") for k in KINDS)
PERCENT = frozenset(METRICS) - {"colour_distance"} | {"verdict_agreement"}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("maskattn-trt", "torch", "diffusers", "transformers", "onnxruntime", "numpy", "pillow"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _columns(records: list[dict], metric: str) -> tuple[list[float], list[float]]:
    pairs = [r["counts"].get(metric, (0.0, 0.0)) for r in records]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _metrics_of(records: list[dict]) -> list[str]:
    present = set().union(*(r["counts"] for r in records)) if records else set()
    return [m for m in (*METRICS, *ALIGNMENT_METRICS) if m in present]


def agreement_counts(a: dict, b: dict) -> tuple[float, float]:
    """Per image: (checker verdicts that agree, verdicts) over each object's ``found`` and the relation."""
    same = sum(x["found"] == y["found"] for x, y in zip(a["objects"], b["objects"], strict=True))
    total = len(a["objects"])
    if a["relation_ok"] is not None or b["relation_ok"] is not None:
        same += a["relation_ok"] == b["relation_ok"]
        total += 1
    return float(same), float(total)


def summarise(records: list[dict], resamples: int = 1000, seed: int = 0) -> dict:
    """Metric -> estimate (JSON-ready) over per-image records (``{"counts": {metric: (num, den)}}``)."""
    return {m: bootstrap_ratio(*_columns(records, m), resamples=resamples, seed=seed).to_dict()
            for m in _metrics_of(records)}


def build_report(request, scenes, units, conditions, *, load_s: float, total_s: float) -> dict:
    boot = {"resamples": request.resamples, "seed": request.bootstrap_seed}
    summary = {c.name: summarise(c.records, **boot) for c in conditions}
    comparisons = {}
    main = conditions[0]
    for other in conditions[1:]:
        shared = [m for m in _metrics_of(main.records) if m in _metrics_of(other.records)]
        diff = {m: bootstrap_paired_difference(*_columns(main.records, m), *_columns(other.records, m),
                                               **boot).to_dict() for m in shared}
        entry = {"a": main.name, "b": other.name, "difference_a_minus_b": diff}
        if other.name != "open":
            agree = [agreement_counts(x["verdict"], y["verdict"]) for x, y in zip(main.records, other.records,
                                                                               strict=True)]
            entry["verdict_agreement"] = bootstrap_ratio([a for a, _ in agree], [t for _, t in agree],
                                                         **boot).to_dict()
        comparisons[f"{main.name}_vs_{other.name}"] = entry
    images = []
    for unit, (k, seed) in enumerate(units):
        row = {"unit": unit, "scene": k, "seed": seed, "caption": scenes[k].caption, "verdicts": {}}
        for c in conditions:
            record = c.records[unit]
            row["verdicts"][c.name] = record["verdict"]
            if "alignment" in record:
                row.setdefault("alignment", {})[c.name] = record["alignment"]
        images.append(row)
    settings = asdict(request)
    settings = {k: (str(v) if k in ("out", "onnx", "engine", "gates", "open_onnx", "open_engine") and v is not None
                    else v) for k, v in settings.items()}
    return {
        "format": "maskattn-trt-evaluation-v1",
        "settings": settings,
        "bootstrap": {**boot, "level": LEVEL, "method": "percentile", "unit": "prompt x seed image",
                      "statistic": "ratio of sums over resampled units"},
        "units": len(units),
        "scenes": [scene.to_dict() for scene in scenes],
        "conditions": {c.name: {"backend": c.backend.name, "artifact": c.backend.artifact,
                                "gates_hash": None if c.name == "open" and c.unet is not None
                                else c.backend.gates.get("gates_hash"),
                                "gates_forced_open": c.unet is not None, "timings_s": c.seconds}
                       for c in conditions},
        "summary": summary,
        "comparisons": comparisons,
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "timings_s": {"load": round(load_s, 4), "total": round(total_s, 4)},
        "images": images,
    }


def _cell(estimate: dict, metric: str, signed: bool = False) -> str:
    value, (low, high) = estimate["value"], estimate["ci95"]
    if value is None:
        return "n/a"
    scale = 100.0 if metric in PERCENT else 1.0
    fmt = "{:+.1f}" if signed else "{:.1f}"
    if scale == 1.0:
        fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(value * scale)} [{fmt.format(low * scale)}, {fmt.format(high * scale)}]"


def table(report: dict) -> list[str]:
    """Metric rows; a column per condition, then each paired difference (95 % bootstrap intervals)."""
    summary, comparisons = report["summary"], report["comparisons"]
    names = list(summary)
    metrics = list(dict.fromkeys(m for name in names for m in summary[name]))
    header = ["metric", *names, *(f"{c['a']} - {c['b']}" for c in comparisons.values())]
    rows = []
    for m in metrics:
        row = [m + (" (lower better)" if m in LOWER_IS_BETTER else "")]
        row += [_cell(summary[n][m], m) if m in summary[n] else "" for n in names]
        row += [_cell(c["difference_a_minus_b"][m], m, signed=True) if m in c["difference_a_minus_b"] else ""
                for c in comparisons.values()]
        rows.append(row)
    for c in comparisons.values():
        if "verdict_agreement" in c:
            rows.append([f"verdict agreement {c['a']} / {c['b']}", *[""] * len(names),
                         _cell(c["verdict_agreement"], "verdict_agreement")])
    widths = [max(len(str(r[i])) if i < len(r) else 0 for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    b = report["bootstrap"]
    lines.append(f"{report['units']} images per condition (prompt x seed); values in % except colour_distance and "
                 f"gate IoU/inside (0..1) — [95 % bootstrap interval, {b['resamples']} resamples, seed {b['seed']}]")
    return lines
