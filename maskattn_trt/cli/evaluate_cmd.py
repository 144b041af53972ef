"""``maskattn-trt evaluate``: options are parsed here, the work is in :mod:`maskattn_trt.evaluate`."""

from __future__ import annotations

from pathlib import Path

import click

from .generate_cmd import _echo_warnings, _settings, sampling_options
from .options import POSITIVE, SEED, FiniteFloat, force_option, json_target, resolve_gates, write_json_report


@click.command("evaluate")
@sampling_options(out=False)
@click.option("--engine", type=click.Path(), default=None,
              help="Engine (or engine folder) for the tensorrt backend (as --backend or --against).")
@click.option("--components", default="auto", show_default=True,
              help="Components the onnxruntime/tensorrt backend runs (as for generate).")
@click.option("--prompts", default="heldout", show_default=True,
              help="Scene set: heldout (2-3 objects with a held-out colour-shape pair or layout), two (2 objects, "
                   "training pairs), single (1 object), or a JSON / JSONL file of scenes (Scene.to_dict()).")
@click.option("--count", type=POSITIVE, default=200, show_default=True, help="Scenes drawn from the set (or kept "
              "from the file).")
@click.option("--prompt-seed", type=SEED, default=0, show_default=True, help="Seed that draws the scene set.")
@click.option("--seeds", type=POSITIVE, default=1, show_default=True,
              help="Image seeds per scene (--seed, --seed + 1, ...); every condition uses the same ones.")
@click.option("--batch", type=POSITIVE, default=1, show_default=True, help="Images per UNet call (x2 with guidance).")
@click.option("--no-open", "no_open", is_flag=True, help="Skip the gates-open comparison.")
@click.option("--open-onnx", type=click.Path(), default=None,
              help="onnxruntime: the gates-open export of the same model (`export --open-gates`).")
@click.option("--open-engine", type=click.Path(), default=None,
              help="tensorrt: the gates-open engine of the same model.")
@click.option("--against", type=click.Choice(["eager", "onnxruntime", "tensorrt"]), default=None,
              help="Also run the gated model on this backend: paired differences and verdict agreement.")
@click.option("--no-alignment", is_flag=True, help="Skip the gate-alignment metrics.")
@click.option("--gate-threshold", type=FiniteFloat(min=0, max=0.999), default=0.5, show_default=True,
              help="A word's averaged gate map counts as open where it exceeds this.")
@click.option("--resamples", type=POSITIVE, default=1000, show_default=True, help="Bootstrap resamples.")
@click.option("--bootstrap-seed", type=SEED, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--sheet-rows", type=click.IntRange(min=0), default=24, show_default=True,
              help="Prompt x seed rows on the contact sheet (the first ones).")
@click.option("--save-images", is_flag=True, help="Also write every image to <out>/images/<condition>/.")
@click.option("--out", type=click.Path(file_okay=False), default="out/evaluate", show_default=True,
              help="Output folder: new, empty, or a previous evaluation (replaced when the run completes).")
@force_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report here ('-': stdout holds only the JSON, the table goes to stderr).")
@_echo_warnings
def evaluate(model, gates_path, backend, onnx, negative_prompt, steps, guidance, scheduler, seed, height, width,
             threads, no_progress, engine, components, prompts, count, prompt_seed, seeds, batch, no_open, open_onnx,
             open_engine, against, no_alignment, gate_threshold, resamples, bootstrap_seed, sheet_rows, save_images,
             out, force, json_path):
    """Measure binding with and without gates: generate images for scenes of the synthetic world, score each with
    the world's deterministic checker, and compare the gated model with the same model with its gates open (and,
    with --against, with another backend) on the same prompt x seed pairs.

    Every metric is a ratio of sums over the images (prompt x seed pairs) of a condition, reported with a 95 %
    percentile-bootstrap interval (--resamples resamples of the images, drawn with --bootstrap-seed). Differences
    between conditions are PAIRED: the same resampled images on both sides.

    \b
    object_precision  objects drawn with the right colour AND shape (matched one-to-one to a checker blob) / all
                      blobs the checker segmented (matched plus unmatched: wrong colour or shape, duplicates).
    object_recall     objects found (right colour and shape) / objects the captions ask for.
    binding           objects whose shape carries their colour / objects whose shape was drawn in any colour:
                      given the shape is there, is the colour bound to it (a swapped colour fails).
    relation          scenes whose relation holds (matched blobs' centroids ordered along the relation's axis by
                      >= 5 % of the image side) / scenes that state a relation; a missing object fails it.
    scene_accuracy    images with every object found, no extra blob and the relation holding / images.
    colour_distance   image-quality proxy, lower is better: total-variation distance (0..1) between the colour
                      histograms (4 levels per channel) of the image and of the scene's ground-truth render.
    gate_iou_colour,  gate alignment (gated condition; eager with --gates, or an export / engine made with
    gate_iou_shape    --gate-outputs; other artifacts give no gate maps): per colour / shape word of the caption,
                      its gate map averaged over every gated site and step (sub-tokens averaged), thresholded at
                      --gate-threshold, upsampled to the image, vs the mask of the checker's blob for that object:
                      IoU, averaged over words whose object was found.
    gate_inside_*     the same words: fraction of the word's open gate area inside its object's blob.
    verdict_agreement (--against) per-object found / relation verdicts that agree between the two backends.

    Writes <out>/evaluation.json (settings, versions, scenes, every per-image verdict and alignment, summary,
    comparisons) and <out>/contact_sheet.png (rows = prompt x seed, columns = conditions + ground truth, + / x per
    object), and prints the table. The default model (--model tiny) is the trained tiny SDXL shipped with the
    package, with its trained gates (eager); on --model tiny-random the numbers are near zero and mean nothing.

    \b
    Examples:
      maskattn-trt evaluate --steps 20 --batch 8 --out out/eval      # shipped model + gates, 200 held-out scenes
      maskattn-trt evaluate --gates runs/tiny_gates/gates.safetensors --steps 20 --out out/eval_mine
      maskattn-trt evaluate --gates g.safetensors --prompts two --count 50 --seeds 2 --json - --out out/eval2
      maskattn-trt evaluate --backend onnxruntime --onnx export/out/tiny --open-onnx export/out/tiny_stock \\
          --out out/eval_ort
      maskattn-trt evaluate --gates g.safetensors --against onnxruntime --onnx export/out/tiny --out out/eval_ab
      maskattn-trt evaluate --no-open --prompts scenes.jsonl --out out/eval_stock
    """
    from ..evaluate import EvaluateRequest, table
    from ..evaluate import evaluate as run

    json_target(json_path)
    request = EvaluateRequest(
        out=Path(out), prompts=prompts, count=count, prompt_seed=prompt_seed, seeds=seeds, seed=seed,
        settings=_settings(model, steps, guidance, scheduler, height, width), model=model, backend=backend,
        onnx=Path(onnx) if onnx else None, engine=Path(engine) if engine else None,
        gates=resolve_gates(model, gates_path, "eager" if against == "eager" else backend), compare_open=not no_open,
        open_onnx=Path(open_onnx) if open_onnx else None, open_engine=Path(open_engine) if open_engine else None,
        against=against, negative=negative_prompt, batch=batch, threads=threads, components=components,
        alignment=not no_alignment, gate_threshold=gate_threshold, resamples=resamples, bootstrap_seed=bootstrap_seed,
        sheet_rows=sheet_rows, save_images=save_images, force=force, progress=not no_progress,
    )
    report = run(request)
    to_stderr = json_path == "-"
    for line in table(report):
        click.echo(line, err=to_stderr)
    written = report["written"]
    click.echo(f"wrote {written['evaluation']} and {written['contact_sheet']} in {report['timings_s']['total']:.1f} s",
               err=to_stderr)
    write_json_report(json_path, report)
