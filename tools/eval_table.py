"""One Markdown row per evaluation: the gated model's rates and the paired gated - open differences.

    python tools/eval_table.py RUN [RUN ...]      (RUN: an evaluate --out folder, or a folder holding eval/)

Columns: recall, binding, relation, scene accuracy and colour distance of the gated condition, then
gated - open for recall, binding, relation and scene accuracy, each with its 95 % bootstrap interval.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RATES = ("object_recall", "binding", "relation", "scene_accuracy")


def _fmt(estimate: dict, signed: bool = False, percent: bool = True) -> str:
    value, (low, high) = estimate["value"], estimate["ci95"]
    if value is None:
        return "n/a"
    scale, fmt = (100.0, "{:+.1f}" if signed else "{:.1f}") if percent else (1.0, "{:.3f}")
    return f"{fmt.format(value * scale)} [{fmt.format(low * scale)}, {fmt.format(high * scale)}]"


def row(folder: Path) -> str:
    path = folder / "evaluation.json" if (folder / "evaluation.json").is_file() else folder / "eval" / "evaluation.json"
    report = json.loads(path.read_text())
    summary, comparisons = report["summary"], report["comparisons"]
    gated = summary["gated"]
    cells = [_fmt(gated[m]) for m in RATES] + [_fmt(gated["colour_distance"], percent=False)]
    diff = comparisons.get("gated_vs_open", {}).get("difference_a_minus_b", {})
    cells += [_fmt(diff[m], signed=True) if m in diff else "" for m in RATES]
    return f"| {folder.name} | {report['units']} | " + " | ".join(cells) + " |"


def main(folders: list[str]) -> int:
    print("| run | images | recall | binding | relation | scene | colour dist. | d recall | d binding | d relation "
          "| d scene |")
    print("| --- " * 11 + "|")
    for folder in folders:
        print(row(Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
