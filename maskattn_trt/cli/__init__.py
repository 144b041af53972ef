"""The ``maskattn-trt`` command line. Commands live in their own modules and are imported lazily, so
``maskattn-trt --help`` is instant and works without heavy or optional packages."""

from __future__ import annotations

import importlib
import os
import sys

import click

from ..errors import MaskAttnError

# command name -> "module:attribute" (relative to maskattn_trt.cli)
COMMANDS = {
    "demo": "demo:demo",
    "gates-info": "gates_cmd:gates_info",
    "convert-gates": "gates_cmd:convert_gates",
    "export": "export_cmd:export",
    "parity": "parity_cmd:parity",
    "bench": "bench_cmd:bench",
    "build-engine": "engine_cmd:build_engine",
    "refit": "engine_cmd:refit",
    "generate": "generate_cmd:generate",
    "gates": "generate_cmd:gates",
    "train": "train_cmd:train",
    "train-base": "base_cmd:train_base",
    "serve": "serve_cmd:serve",
    "evaluate": "evaluate_cmd:evaluate",
}

_HELP = {
    "demo": "Run the whole toolkit offline on the shipped tiny SDXL.",
    "gates-info": "Describe a gate checkpoint.",
    "convert-gates": "Convert an official gate_final.pt to safetensors.",
    "export": "Export the gated UNet as one ONNX graph.",
    "parity": "Compare backends on the same inputs.",
    "bench": "Measure latency of eager / ONNX Runtime, stock / gated.",
    "build-engine": "Compile an exported graph into a TensorRT engine.",
    "refit": "Swap new gate weights into a refittable engine.",
    "generate": "Generate images from prompts with any backend.",
    "gates": "Save per-token gate maps for a prompt.",
    "train": "Train gate heads on a frozen SDXL.",
    "train-base": "Train the tiny base model on the synthetic world.",
    "serve": "Serve images over HTTP (Ray Serve, batched).",
    "evaluate": "Measure binding with and without gates on the synthetic world.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._available(name)]

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(f"{__name__}.{module}") is not None

    def get_command(self, ctx, name):
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="maskattn-trt")
def cli():
    """maskattn-trt: MaskAttn-SDXL from gate training to TensorRT deployment.

    train -> export -> build-engine -> generate, with parity against eager PyTorch at every stage.
    """


def main(argv=None) -> None:
    # transformers warns at import about optional image backends the CLI never uses.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        cli.main(args=argv, prog_name="maskattn-trt", standalone_mode=False)
    except MaskAttnError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Ctrl-C (KeyboardInterrupt) included
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # a bad option value, a missing or unknown option: one line, exit 2
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
