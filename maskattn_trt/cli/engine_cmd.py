"""``maskattn-trt build-engine`` and ``maskattn-trt refit``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import POSITIVE, gates_option, progress_option


@click.command("build-engine")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(exists=True),
              help="Export folder of any component (<component>.onnx + io_spec.json), its .onnx, or an export tree "
                   "(export --component all: every component is built).")
@click.option("--out", type=click.Path(), default=None,
              help="Engine file (.engine); for an export tree, a folder (<component>.engine inside). Default: "
                   "engines/<export>.<dtype>.<builder>[.<sm>].engine, or engines/<tree>/ for a tree.")
@click.option("--builder", type=click.Choice(["tensorrt", "tensorrt-rtx"]), default=None,
              help="Default: whichever is installed, preferring standard TensorRT.")
@click.option("--batch", default=None, help="Batch MIN:OPT:MAX (default: the exported range).")
@click.option("--height", default=None, help="Image height in PIXELS, MIN:OPT:MAX (multiples of 8).")
@click.option("--width", default=None, help="Image width in PIXELS, MIN:OPT:MAX (multiples of 8).")
@click.option("--static", is_flag=True, help="One shape (the opt values): smallest engine, CUDA-graph capable.")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="Builder optimization level 0-5 (TensorRT default 3).")
@click.option("--workspace", type=POSITIVE, default=None, help="Workspace memory pool limit in MiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), default=None,
              help="Timing cache file, loaded if present and saved after the build (standard TensorRT).")
@click.option("--refittable", is_flag=True, help="Make the gate-head weights refittable (`maskattn-trt refit`).")
@click.option("--compute-capability", "ccs", multiple=True,
              help="TensorRT-RTX target GPU: SM75|SM80|SM86|SM89|SM120 (repeatable; default SM89; SM75: fp16 "
                   "exports with --gate-heads fp16 only).")
@click.option("--verbose", is_flag=True, help="Print the builder's verbose log.")
@progress_option
def build_engine(onnx_path, out, builder, batch, height, width, static, opt_level, workspace, timing_cache,
                 refittable, ccs, verbose, no_progress):
    """Compile an exported graph into a TensorRT or TensorRT-RTX engine (with a manifest beside it).

    Ctrl-C cancels the build (exit 130) and leaves no file behind.

    \b
    Examples:
      maskattn-trt build-engine --onnx export/out/tiny --builder tensorrt-rtx --compute-capability SM89
      maskattn-trt build-engine --onnx export/out/sdxl --height 768:1024:1024 --width 768:1024:1024 --batch 1:2:2
      maskattn-trt build-engine --onnx export/out/tiny_pipeline --builder tensorrt-rtx --out engines/tiny_pipeline
    """
    from ..engines.build import BuildOptions, build_engines, is_export_tree
    from ..engines.build import build_engine as run_build

    options = BuildOptions(
        onnx=Path(onnx_path), out=Path(out) if out else None, builder=builder, batch=batch, height=height,
        width=width, static=static, opt_level=opt_level, workspace_mib=workspace,
        timing_cache=Path(timing_cache) if timing_cache else None, refittable=refittable,
        compute_capabilities=tuple(ccs), verbose=verbose, progress=not no_progress,
    )
    if is_export_tree(onnx_path):
        results = build_engines(options, echo=click.echo)
        for result in results:
            click.echo(result.summary())
        total = sum(r.manifest.engine_bytes for r in results) / (1 << 20)
        click.echo(f"built {len(results)} engines ({total:.1f} MiB) in {sum(r.seconds for r in results):.1f} s into "
                   f"{results[0].engine_path.parent}")
        return
    result = run_build(options, echo=click.echo)
    click.echo(result.summary())


@click.command("refit")
@click.option("--engine", "engine_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="A refittable engine (built with --refittable).")
@gates_option
@click.option("--check-only", is_flag=True, help="Validate the checkpoint against the engine; do not refit (no GPU).")
@click.option("--force", is_flag=True, help="Refit even if the engine's manifest does not match the engine file.")
def refit(engine_path, gates_path, check_only, force):
    """Swap new gate weights into a refittable engine without rebuilding it.

    \b
    Example:
      maskattn-trt refit --engine engines/sdxl.fp16.tensorrt.engine --gates runs/gates_step2000.safetensors
    """
    from ..artifacts import EngineManifest, engine_manifest_path
    from ..engines.refit import plan_refit, refit_engine
    from ..errors import BadInputError, EngineBuildError

    if gates_path is None:
        raise BadInputError("refit needs --gates CHECKPOINT (.safetensors from train / convert-gates)")
    if check_only:
        manifest = EngineManifest.load(engine_manifest_path(engine_path))
        if not manifest.refittable:
            raise EngineBuildError(f"engine {engine_path} was not built refittable; rebuild it with --refittable")
        plan, _ = plan_refit(manifest.refit_map, gates_path)
        click.echo(f"{gates_path} fits {engine_path}: {len(plan)} engine weights map to its gate tensors by name")
        return
    result = refit_engine(engine_path, gates_path, force=force)
    click.echo(f"refitted {result['weights']} gate weights into {result['engine']} (gates {result['gates_hash'][:12]})")
