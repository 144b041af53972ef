"""Compare runners on the same feeds: per-output error statistics, per-site gate agreement, explicit tolerances.

Written once against the Runner contract, so eager PyTorch, ONNX Runtime and TensorRT runners plug in the
same way. Element statistics and the max-abs verdict come from Polygraphy's ``SimpleCompareFunc`` (with
``check_error_stat="max"`` and ``rtol=0``: the max absolute error alone decides); relative L2 error and
cosine similarity, which Polygraphy does not compute, are added here. Gate outputs (0/1) are compared by
agreement: the share of (position, token) pairs where both backends made the same decision. A logit within
rounding of the threshold may flip between backends; that is reported, not hidden, and tolerated up to the
stated agreement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..errors import BadInputError, ParityError
from ..runners.base import Runner
from ..spec import GATE_PREFIX, OUTPUT_NAME, TOLERANCES
from ..utils.progress import progress_bar


@dataclass
class OutputStats:
    name: str
    max_abs: float
    mean_abs: float
    median_abs: float
    rel_l2: float
    cosine: float
    finite: bool
    atol: float
    rel_l2_tol: float
    passed: bool
    flip_affected: bool = False  # judged with the flip tolerance: explained gate flips moved this output


@dataclass
class GateStats:
    site: str
    agreement: float
    flips: int
    open_fraction: float
    tolerance: float
    passed: bool
    unexplained_flips: int | None = None  # flips whose reference logit is farther than `margin` from the threshold
    margin: float | None = None
    max_flip_margin: float | None = None


@dataclass
class CaseResult:
    case: str
    runner: str
    shape: tuple[int, ...]
    outputs: dict[str, OutputStats] = field(default_factory=dict)
    gates: dict[str, GateStats] = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0  # this runner's inference time
    reference_seconds: float = 0.0  # the reference's, same feed

    @property
    def passed(self) -> bool:
        return self.skipped is not None or (all(o.passed for o in self.outputs.values())
                                            and all(g.passed for g in self.gates.values()))

    @property
    def min_agreement(self) -> float | None:
        return min((g.agreement for g in self.gates.values()), default=None)


@dataclass
class ParityReport:
    reference: str
    cases: list[CaseResult]
    tolerances: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    def to_dict(self) -> dict:
        return {"reference": self.reference, "passed": self.passed, "tolerances": self.tolerances,
                "notes": self.notes, "cases": [dict(asdict(c), passed=c.passed) for c in self.cases]}

    def table(self) -> list[str]:
        """A fixed-width table: one row per (case, runner)."""
        head = (f"{'case':<40} {'runner':<12} {'shape (b,h,w)':<14} {'max abs':>9} {'rel L2':>9} {'cosine':>10} "
                f"{'gate agr.':>9} {'flips':>6}  result")
        rows = [head, "-" * len(head)]
        for c in self.cases:
            shape = "x".join(map(str, c.shape))
            if c.skipped:
                rows.append(f"{c.case:<40} {c.runner:<12} {shape:<14} skipped: {c.skipped}")
                continue
            if OUTPUT_NAME not in c.outputs:
                for o in c.outputs.values():
                    rows.append(f"{(c.case + ' ' + o.name)[:40]:<40} {c.runner:<12} {shape:<14} {o.max_abs:9.2e} "
                                f"{o.rel_l2:9.2e} {o.cosine:10.7f} {'-':>9} {'-':>6}  {'ok' if o.passed else 'FAIL'}")
                continue
            o = c.outputs[OUTPUT_NAME]
            agr = f"{c.min_agreement:.5f}" if c.min_agreement is not None else "-"
            flips = sum(g.flips for g in c.gates.values()) if c.gates else "-"
            unexplained = [g.unexplained_flips for g in c.gates.values() if g.unexplained_flips is not None]
            near = f" ({sum(unexplained)} unexplained flips)" if unexplained else ""
            near += " (flip tolerance)" if o.flip_affected else ""
            rows.append(f"{c.case:<40} {c.runner:<12} {shape:<14} {o.max_abs:9.2e} {o.rel_l2:9.2e} "
                        f"{o.cosine:10.7f} {agr:>9} {flips!s:>6}  {'ok' if c.passed else 'FAIL'}{near}")
        return rows

    def failures(self) -> list[str]:
        out = []
        for c in self.cases:
            for o in c.outputs.values():
                if not o.passed:
                    out.append(f"{c.case}/{c.runner} {o.name}: max abs {o.max_abs:.2e} (tol {o.atol:.0e}), rel L2 "
                               f"{o.rel_l2:.2e} (tol {o.rel_l2_tol:.0e}){'' if o.finite else ', non-finite values'}")
            for g in c.gates.values():
                if not g.passed:
                    out.append(f"{c.case}/{c.runner} gate {g.site}: agreement {g.agreement:.5f} < {g.tolerance}")
        return out

    def raise_if_failed(self) -> None:
        if not self.passed:
            fails = self.failures()
            raise ParityError(f"parity failed in {len(fails)} check(s): {fails[0]}"
                              f"{f' (and {len(fails) - 1} more)' if len(fails) > 1 else ''}; see the table / --json")


def tolerances_for(reference: Runner, other: Runner) -> dict:
    """The explicit tolerances of a precision pair (:data:`maskattn_trt.spec.TOLERANCES`)."""
    pair = (reference.spec.dtype, other.spec.dtype)
    if pair not in TOLERANCES:
        raise BadInputError(f"no parity tolerances for the precision pair {pair}; known: {sorted(TOLERANCES)}")
    return dict(TOLERANCES[pair])


def _output_stats(name: str, ref: torch.Tensor, out: torch.Tensor, atol: float, rel_tol: float) -> OutputStats:
    from polygraphy.comparator import IterationResult, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    a = np.ascontiguousarray(ref.detach().float().cpu().numpy())  # Polygraphy's view() needs contiguous arrays
    b = np.ascontiguousarray(out.detach().float().cpu().numpy())
    if a.shape != b.shape:
        raise ParityError(f"output {name}: shape {b.shape} differs from the reference's {a.shape}")
    finite = bool(np.isfinite(b).all())
    G_LOGGER.module_severity = G_LOGGER.ERROR
    compare = SimpleCompareFunc(atol={name: atol}, rtol={name: 0.0}, check_error_stat={name: "max"})
    result = compare(IterationResult({name: a}, runner_name="reference"),
                     IterationResult({name: b}, runner_name="other"))[name]
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    ref_norm, out_norm = np.linalg.norm(a64), np.linalg.norm(b64)
    rel_l2 = float(np.linalg.norm(a64 - b64) / max(ref_norm, 1e-30))
    cosine = float(a64 @ b64 / max(ref_norm * out_norm, 1e-30))
    if not finite:
        rel_l2, cosine = math.inf, math.nan
    passed = finite and bool(result) and rel_l2 <= rel_tol
    return OutputStats(name, float(result.max_absdiff), float(result.mean_absdiff), float(result.median_absdiff),
                       rel_l2, cosine, finite, atol, rel_tol, passed)


def _gate_stats(site: str, ref: torch.Tensor, out: torch.Tensor, tolerance: float, logit_margin: float,
                margins: torch.Tensor | None, upstream_flipped: bool) -> GateStats:
    a, b = ref.detach().float().cpu() > 0.5, out.detach().float().cpu() > 0.5
    flipped = a != b
    flips = int(flipped.sum())
    agreement = 1.0 - flips / max(a.numel(), 1)
    stats = GateStats(site, agreement, flips, float(a.float().mean()), tolerance, agreement >= tolerance)
    if margins is not None and margins.shape == flipped.shape:
        distance = margins.detach().float().cpu()[flipped]
        stats.margin = logit_margin
        # Downstream of a flipped site the features (and logits) legitimately differ: flips there are explained.
        stats.unexplained_flips = 0 if upstream_flipped else int((distance > logit_margin).sum())
        stats.max_flip_margin = float(distance.max()) if flips else 0.0
        # Flips of logits within rounding of the threshold are not a bug (DESIGN.md decision 1).
        stats.passed = stats.unexplained_flips == 0
    return stats


def compare_case(case: str, runner_name: str, ref_out: dict, out: dict, tolerances: dict,
                 shape: tuple[int, int, int], margins: dict | None = None) -> CaseResult:
    """Compare one feed's outputs. Gate sites are visited in forward order (the order of the outputs), so a
    flip downstream of an earlier flip counts as explained; when every flip is explained, ``noise_pred`` is
    judged with the explicit ``flip_noise_pred`` tolerance instead (a rounding flip moves it legitimately)."""
    result = CaseResult(case, runner_name, shape)
    if OUTPUT_NAME not in ref_out:  # a text encoder or the VAE decoder: every output against its own tolerance
        for name in ref_out:
            result.outputs[name] = _output_stats(name, ref_out[name], out[name], *tolerances[name])
        return result
    flipped = False
    for name in ref_out:
        if name.startswith(GATE_PREFIX) and name in out:
            site = name[len(GATE_PREFIX):]
            result.gates[site] = _gate_stats(site, ref_out[name], out[name], tolerances["gate_agreement"],
                                             tolerances.get("gate_logit_margin", 0.0), (margins or {}).get(site),
                                             flipped)
            flipped = flipped or result.gates[site].flips > 0
    explained = flipped and all(g.unexplained_flips == 0 for g in result.gates.values())
    atol, rel_tol = tolerances[OUTPUT_NAME]
    stats = _output_stats(OUTPUT_NAME, ref_out[OUTPUT_NAME], out[OUTPUT_NAME], atol, rel_tol)
    if not stats.passed and explained and "flip_noise_pred" in tolerances:
        stats = _output_stats(OUTPUT_NAME, ref_out[OUTPUT_NAME], out[OUTPUT_NAME], *tolerances["flip_noise_pred"])
        stats.flip_affected = True
    result.outputs[OUTPUT_NAME] = stats
    return result


def compare_runners(reference: Runner, others: dict[str, Runner], feeds: list[tuple[str, dict]],
                    tolerances: dict | None = None, progress: bool = True,
                    reference_margins: dict | None = None) -> ParityReport:
    """Run every feed through ``reference`` and each of ``others`` and compare.

    ``tolerances``: ``{OUTPUT_NAME: (max_abs, rel_l2), "gate_agreement": fraction}`` for every runner, or
    ``{runner_name: {...}}`` per runner; default from :data:`maskattn_trt.spec.TOLERANCES` by dtype pair.
    A feed outside a runner's shape range (e.g. an engine profile narrower than the export) is reported as
    skipped for that runner, not failed. ``reference_margins``: a dict the reference fills with each site's
    ``logit - logit(tau)`` on every inference (:func:`maskattn_trt.export.patches.recording_gate_margins`);
    with it, a site passes when every flip lies within ``gate_logit_margin`` of the threshold.
    """
    chosen = {}
    for name, runner in others.items():
        if tolerances is None:
            chosen[name] = tolerances_for(reference, runner)
        else:
            chosen[name] = tolerances[name] if name in tolerances else tolerances
    cases = []
    runners = [reference, *others.values()]
    bar = progress_bar(progress, total=len(feeds) * len(others), desc="parity", leave=False)
    try:
        for runner in runners:
            runner.__enter__()
        for label, feed in feeds:
            shape = reference.spec.feed_shape(feed)
            ref_out = reference.infer(feed)
            ref_seconds = reference.last_inference_s
            for name, runner in others.items():
                try:
                    runner.spec.check(*shape, what=name)
                except BadInputError as exc:
                    cases.append(CaseResult(label, name, shape, skipped=str(exc).split(";")[0]))
                    bar.update(1)
                    continue
                out = runner.infer(feed)
                case = compare_case(label, name, ref_out, out, chosen[name], shape, reference_margins)
                case.seconds, case.reference_seconds = runner.last_inference_s, ref_seconds
                cases.append(case)
                bar.update(1)
    finally:
        bar.close()
        for runner in reversed(runners):
            if runner.is_active:
                runner.__exit__(None, None, None)
    serial = {name: {k: list(v) if isinstance(v, tuple) else v for k, v in tol.items()} for name, tol in chosen.items()}
    return ParityReport(reference.name, cases, serial)
