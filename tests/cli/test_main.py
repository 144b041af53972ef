"""`maskattn-trt --help`: instant, lists the commands, imports nothing heavy."""

import subprocess
import sys


def test_help_is_fast_and_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "maskattn_trt.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("demo", "convert-gates", "gates-info"):
        assert command in out
    # help must not import heavy or optional packages
    probe = ("import sys; from maskattn_trt.cli import cli; import click;"
             "click.testing.CliRunner().invoke(cli, ['--help']);"
             "print(sorted(m for m in ('torch','onnxruntime','tensorrt_rtx_bindings','diffusers') if m in sys.modules))")
    heavy = subprocess.run([sys.executable, "-c", "import click.testing;" + probe], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert heavy == "[]"
