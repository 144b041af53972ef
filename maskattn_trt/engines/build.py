"""Compile an exported graph (any component) into a TensorRT or TensorRT-RTX engine, with a manifest beside it;
or every component of an export tree into one engine folder (``<component>.engine`` + manifests).

One builder for both flavours (they share the Python API we use). Networks are strongly typed: precision
comes from the ONNX types, never from builder flags. The plan is streamed into a temporary file next to its
final name (lower peak memory than holding the serialized engine), its byte count checked (TensorRT
swallows writer exceptions), and renamed into place only together with a complete manifest.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ..artifacts import (
    EngineManifest,
    ExportArtifact,
    engine_manifest_path,
    engine_name,
    open_export,
    open_export_tree,
    tree_components,
)
from ..component_spec import IOSpec, resolve_engine_profile
from ..errors import BackendUnavailableError, BadInputError, EngineBuildError
from ..utils.io import atomic_path, check_output_location, sha256_file
from ..utils.tensorrt import Flavour, device_compute_capability, load_flavour, parse_compute_capability
from .callbacks import cancel_on_sigint, progress_monitor, stream_writer
from .refit import gate_weights_hash, isolate_gate_weights, load_graph

DEFAULT_ENGINE_DIR = Path("engines")
DEFAULT_COMPUTE_CAPABILITY = "SM89"
MIB = 1 << 20


@dataclass(frozen=True)
class BuildOptions:
    """What ``maskattn-trt build-engine`` passes to :func:`build_engine` (pixel ranges as ``MIN:OPT:MAX``)."""

    onnx: Path
    out: Path | None = None
    builder: str | None = None
    batch: str | None = None
    height: str | None = None
    width: str | None = None
    static: bool = False
    opt_level: int | None = None
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    refittable: bool = False
    compute_capabilities: tuple[str, ...] = ()
    tactic_dram_mib: int | None = None
    max_threads: int | None = None
    verbose: bool = False
    progress: bool = True


@dataclass
class BuildResult:
    engine_path: Path
    manifest: EngineManifest
    seconds: float
    timing_cache: str
    phases: list[str] = field(default_factory=list)

    def summary(self) -> str:
        m = self.manifest
        p = m.profile
        shape = (f"{p['batch']} x {p['pixel_height']} x {p['pixel_width']} px" if "pixel_height" in p
                 else f"batch {p['batch']}")
        return (f"wrote {self.engine_path} ({m.engine_bytes / MIB:.1f} MiB, {m.precision}, "
                f"{m.builder} {m.builder_version}"
                + (f", {'+'.join(m.compute_capabilities)}" if m.compute_capabilities else "")
                + f"{', refittable gates' if m.refittable else ''}) in {self.seconds:.1f} s; "
                f"profile {shape}; "
                f"timing cache: {self.timing_cache}; manifest {engine_manifest_path(self.engine_path).name}")


def default_engine_path(export: ExportArtifact, flavour: Flavour, ccs: tuple[str, ...]) -> Path:
    folder = export.onnx_path.parent.name or "unet"
    target = f".{'-'.join(c.lower() for c in ccs)}" if flavour.is_rtx else ""
    return DEFAULT_ENGINE_DIR / f"{folder}.{export.io_spec.dtype}.{flavour.name}{target}.engine"


def _check_options(options: BuildOptions, flavour: Flavour) -> tuple[str, ...]:
    """Validate builder-specific options; returns the compute capabilities to target."""
    if options.opt_level is not None and not 0 <= options.opt_level <= 5:
        raise BadInputError(f"--opt-level must be 0..5; got {options.opt_level}")
    if options.workspace_mib is not None and options.workspace_mib <= 0:
        raise BadInputError(f"--workspace must be a positive number of MiB; got {options.workspace_mib}")
    ccs = tuple(dict.fromkeys(parse_compute_capability(c) for c in options.compute_capabilities))
    if flavour.is_rtx:
        if options.timing_cache is not None:
            raise BadInputError(
                f"--timing-cache does nothing with {flavour.label}: its timing-cache API is a no-op since 1.2 (kernels "
                "are tuned at run time; the engine runner keeps a runtime cache instead); drop --timing-cache or "
                "build with --builder tensorrt"
            )
        if options.refittable and not _device_cc():
            # measured with 1.7.1: marking any weight refittable makes Myelin compile on a GPU (CUDA_SUCCESS check)
            raise BackendUnavailableError(
                f"{flavour.label} builds refittable engines only on a machine with a CUDA GPU (without one, marking "
                "gate weights refittable fails in its kernel compiler); build without --refittable here, or on "
                "the GPU machine"
            )
        if options.refittable and len(ccs) > 1:
            # measured with 1.7.1: Myelin's kernel generator checks for exactly one SM when weights are refittable
            raise BadInputError(f"{flavour.label} builds refittable engines for one compute capability only; got "
                                f"{'+'.join(ccs)} — build one refittable engine per target")
        return ccs or (DEFAULT_COMPUTE_CAPABILITY,)
    if ccs:
        raise BadInputError("--compute-capability applies to --builder tensorrt-rtx only; standard TensorRT builds "
                            "for the GPU it runs on")
    return ()


def check_io_names(network, io_spec: IOSpec) -> None:
    """The parsed network's inputs and outputs must be the ones the IO spec names."""
    inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    names = list(io_spec.input_names)
    if sorted(inputs) != sorted(names) or sorted(outputs) != sorted(io_spec.output_names):
        raise BadInputError(
            f"the ONNX graph's inputs {inputs} / outputs {outputs} do not match its IO spec "
            f"({names} / {io_spec.output_names}); the folder mixes files of two exports — re-export"
        )


def fp32_gemms(model) -> list[str]:
    """Names of the MatMul / Gemm nodes of an ONNX graph that compute in fp32 (type inference, no weights)."""
    float32 = onnx.TensorProto.FLOAT
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # inference is best effort: without it, the builder's own error stands
        return []
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    gemms = (n for n in graph.node if n.op_type in ("MatMul", "Gemm"))
    return [n.name or n.output[0] for n in gemms if types.get(n.output[0]) == float32]


def _refuse_fp32_on_turing(model, export: ExportArtifact, ccs) -> None:
    """TensorRT-RTX cannot compile an fp32 GEMM for Turing (measured, 1.7.1: 'FP32 GEMM is not supported')."""
    fp32 = fp32_gemms(model) if "SM75" in ccs else []
    if fp32:
        heads = all("gate_head" in name for name in fp32)
        remedy = ("re-export with --dtype fp16 --gate-heads fp16" if heads else "re-export with --dtype fp16 (gated: "
                  "add --gate-heads fp16)")
        raise BadInputError(
            f"SM75 (Turing) has no fp32 GEMM in TensorRT-RTX, and {export.onnx_path} has {len(fp32)} fp32 matrix "
            f"products ({'its fp32 gate heads' if heads else 'an fp32 export'}, e.g. {fp32[0]}); {remedy}, or build "
            "for SM80 / SM86 / SM89 / SM120"
        )


def _parse(flavour: Flavour, builder, export: ExportArtifact, refittable: bool, logger, ccs=()):
    """Parse the ONNX into a strongly typed network; returns (network, parser, refit_map, gates_hash)."""
    trt = flavour.trt
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    model = load_graph(export.onnx_path)
    _refuse_fp32_on_turing(model, export, ccs)
    gates_hash = (export.gates_hash or gate_weights_hash(model)) if export.component == "unet" else None
    refit_map = {}
    if refittable:
        refit_map = {name: w.to_dict() for name, w in isolate_gate_weights(model).items()}
        if not refit_map:
            raise BadInputError(f"--refittable: {export.onnx_path} has no gate weights to make refittable "
                                "(an ungated export?)")
    ok = parser.parse(model.SerializeToString(), str(export.onnx_path))
    if not ok:
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineBuildError(
            f"{flavour.label} could not parse {export.onnx_path}: {'; '.join(errors[:3]) or 'no details'}; "
            "re-export it (`maskattn-trt export`) and check it with `maskattn-trt parity`"
        )
    check_io_names(network, export.io_spec)
    for name in refit_map:
        if not network.mark_weights_refittable(name):
            raise EngineBuildError(f"{flavour.label} could not mark gate weight {name} refittable")
    return network, parser, refit_map, gates_hash


def _config(flavour: Flavour, builder, options: BuildOptions, ccs, profile, export: ExportArtifact):
    trt = flavour.trt
    config = builder.create_builder_config()
    if ccs:
        config.num_compute_capabilities = len(ccs)
        for index, cc in enumerate(ccs):
            if not config.set_compute_capability(flavour.compute_capability(cc), index):
                raise EngineBuildError(f"{flavour.label} refused compute capability {cc}")
    if options.opt_level is not None:
        config.builder_optimization_level = options.opt_level
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib * MIB)
    if options.tactic_dram_mib is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.TACTIC_DRAM, options.tactic_dram_mib * MIB)
    if options.refittable:
        config.set_flag(trt.BuilderFlag.REFIT_INDIVIDUAL)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    trt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes(export.io_spec).items():
        trt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(trt_profile)
    return config


def _load_timing_cache(config, path: Path | None):
    """Attach the timing cache (loaded from ``path`` when it exists); returns (cache, entries loaded)."""
    if path is None:
        return None, 0
    data = b""
    if path.exists():
        data = path.read_bytes()
        if not data:
            raise BadInputError(f"timing cache {path} is empty; delete it to start a new one")
    cache = config.create_timing_cache(data)
    entries = len(cache.queryKeys()) if data else 0
    if data and entries == 0:
        raise BadInputError(f"timing cache {path} could not be read by this TensorRT (other version or GPU?); "
                            "delete it to start a new one")
    if not config.set_timing_cache(cache, False):
        raise EngineBuildError(f"TensorRT refused timing cache {path} (made by another TensorRT or GPU?); delete it")
    return cache, entries


def build_engine(options: BuildOptions, echo=None, logger=None) -> BuildResult:
    """Build the engine and its manifest; nothing is left under the final names if anything fails.

    ``logger``: a TensorRT ``ILogger`` to use instead of the default (e.g. one capturing layer information).
    """
    flavour = load_flavour(options.builder)
    ccs = _check_options(options, flavour)
    if options.out is not None:  # before any work: a bad --out fails at once
        _check_out(Path(options.out))
    export = open_export(options.onnx)
    onnx_sha256 = export.onnx_sha256()
    if options.refittable and export.component != "unet":
        raise BadInputError(f"--refittable makes gate weights refittable; the {export.component} has none")
    profile = resolve_engine_profile(export.io_spec, options.batch, options.height, options.width, options.static)
    out = Path(options.out) if options.out else default_engine_path(export, flavour, ccs)
    _check_out(out)
    if options.timing_cache is not None and Path(options.timing_cache).is_dir():
        raise BadInputError(f"--timing-cache {options.timing_cache} is a folder; pass a file path")
    trt = flavour.trt
    logger = logger or flavour.logger(options.verbose)
    start = time.perf_counter()
    builder = trt.Builder(logger)
    if options.max_threads is not None:
        builder.max_threads = options.max_threads
    network, parser, refit_map, gates_hash = _parse(flavour, builder, export, options.refittable, logger, ccs)
    config = _config(flavour, builder, options, ccs, profile, export)
    timing = Path(options.timing_cache) if options.timing_cache else None
    cache, entries = _load_timing_cache(config, timing)
    monitor = progress_monitor(trt, enabled=options.progress)
    config.progress_monitor = monitor
    if echo:
        echo(f"building {flavour.label} engine from {export.onnx_path} ({export.io_spec.dtype}, "
             f"{profile.describe(export.io_spec)}{', ' + '+'.join(ccs) if ccs else ''})")
    final_manifest = engine_manifest_path(out)
    with atomic_path(out) as tmp_engine, atomic_path(final_manifest) as tmp_manifest:
        with open(tmp_engine, "wb") as handle, cancel_on_sigint(monitor):
            writer = stream_writer(trt, handle)
            ok = builder.build_serialized_network_to_stream(network, config, writer)
        if monitor.interrupted:  # Ctrl-C: the temporary files go, the CLI exits 130
            raise KeyboardInterrupt
        if writer.error is not None:
            raise EngineBuildError(f"writing the engine to {tmp_engine} failed: {writer.error}") from writer.error
        if not ok or writer.bytes_written == 0 or tmp_engine.stat().st_size != writer.bytes_written:
            raise EngineBuildError(
                f"{flavour.label} failed to build an engine from {export.onnx_path} ({writer.bytes_written} bytes "
                "written); rerun with --verbose for the builder log"
            )
        seconds = time.perf_counter() - start
        manifest = EngineManifest(
            engine_sha256=sha256_file(tmp_engine), engine_bytes=writer.bytes_written,
            onnx_path=str(export.onnx_path.resolve()), onnx_sha256=onnx_sha256, gates_hash=gates_hash,
            builder=flavour.name, builder_version=flavour.version, compute_capabilities=list(ccs) or _device_cc(),
            precision=export.io_spec.dtype, profile=profile.to_dict(export.io_spec),
            refittable=options.refittable, build_seconds=round(seconds, 2),
            io_spec=profile.spec(export.io_spec).to_dict(), refit_map=refit_map,
            options={"opt_level": options.opt_level, "workspace_mib": options.workspace_mib,
                     "tactic_dram_mib": options.tactic_dram_mib, "timing_cache": str(timing) if timing else None},
        )
        manifest.save(tmp_manifest)
    status = "not used"
    if timing is not None:
        with atomic_path(timing) as tmp_cache:
            tmp_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
        status = f"reused {entries} entries from {timing}, saved" if entries else f"new, saved to {timing}"
    del parser, network, config, builder
    return BuildResult(out, manifest, seconds, status, phases=list(dict.fromkeys(monitor.phases)))


def _check_out(out: Path) -> None:
    """An engine path: ``.engine``/``.plan``, writable, and not an existing file other than an engine of ours."""
    if out.suffix not in (".engine", ".plan"):
        raise BadInputError(f"engine path {out} should end in .engine or .plan")
    check_output_location(out, folder=False)
    if out.exists() and not engine_manifest_path(out).is_file():
        raise BadInputError(f"--out {out} exists and is not an engine built here (no {engine_manifest_path(out).name} "
                            "beside it); choose another path or delete it first")


def _device_cc() -> list[str]:
    cc = device_compute_capability()
    return [cc] if cc else []


def is_export_tree(path: str | Path) -> bool:
    """An export tree (``export --component all``): component subfolders, no graph of its own."""
    path = Path(path)
    return path.is_dir() and not any(path.glob("*.onnx")) and bool(tree_components(path))


def build_engines(options: BuildOptions, echo=None) -> list[BuildResult]:
    """Build every component of an export tree into one engine folder (``options.out``, default
    ``engines/<tree>/``): ``<component>.engine`` + manifest each, which ``generate --backend tensorrt --engine
    FOLDER`` runs end to end. Height / width ranges apply to the UNet and the VAE decoder, --refittable to the
    UNet; each engine is written atomically (a failure leaves the ones already built)."""
    tree = open_export_tree(options.onnx)
    folder = Path(options.out) if options.out else DEFAULT_ENGINE_DIR / Path(options.onnx).resolve().name
    if folder.suffix in (".engine", ".plan"):
        raise BadInputError(f"--out {folder} must be a folder when --onnx is an export tree (one engine per "
                            "component is written inside it)")
    results = []
    for component, export in tree.items():
        sized = hasattr(export.io_spec, "height")
        component_options = dataclasses.replace(
            options, onnx=export.folder, out=folder / engine_name(component),
            height=options.height if sized else None, width=options.width if sized else None,
            refittable=options.refittable and component == "unet")
        if echo:
            echo(f"[{component}]")
        results.append(build_engine(component_options, echo=echo))
    return results
