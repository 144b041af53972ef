"""What commands write and print: images never overwritten, `--json -` stdout is pure JSON, a cancelled engine
build raises KeyboardInterrupt (exit 130) instead of failing as a build error (issue 10, items 7, 9, 13)."""

from __future__ import annotations

import json
import os
import signal

SMALL = ("--steps", "2", "--height", "32", "--width", "32", "--no-progress")


def test_generate_twice_into_one_folder_keeps_every_image_and_json_stdout_is_pure(run_cli, tmp_path):
    out = tmp_path / "gen"
    args = ("generate", "--prompt", "猫", "--prompt", "犬", "--out", out, *SMALL)
    code, stdout, err = run_cli(*args, "--json", "-")
    assert code == 0, err
    first = json.loads(stdout)  # nothing but the JSON on stdout
    assert len(first["images"]) == 2 and len(set(first["images"])) == 2 and "wrote 2 image(s)" in err
    code, stdout, err = run_cli(*args, "--json", tmp_path / "summary.json")
    assert code == 0, err
    second = json.loads((tmp_path / "summary.json").read_text())
    assert not set(first["images"]) & set(second["images"])
    assert len(list(out.glob("*.png"))) == 4 and len(list(out.glob("*.json"))) == 4


def test_build_cancelled_by_ctrl_c_is_reported_as_an_interrupt():
    from maskattn_trt.engines.callbacks import cancel_on_sigint, progress_monitor

    class FakeTrt:
        class IProgressMonitor:
            def __init__(self):
                pass

    monitor = progress_monitor(FakeTrt, enabled=False)
    monitor.phase_start("build", None, 3)
    with cancel_on_sigint(monitor):
        assert monitor.step_complete("build", 0) is True
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: handled, not raised inside the builder's callback
        assert monitor.step_complete("build", 1) is False  # TensorRT cancels the build
    assert monitor.interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
