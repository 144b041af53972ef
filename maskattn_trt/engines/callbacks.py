"""Objects TensorRT calls back during a build: a tqdm progress monitor and a streaming file writer."""

from __future__ import annotations

import contextlib
import signal
import threading

from ..utils.progress import progress_bar


def progress_monitor(trt, enabled: bool = True):
    """An ``IProgressMonitor`` showing the builder's top-level phases as tqdm bars (thread-safe).

    A KeyboardInterrupt (Ctrl-C) raised inside a callback would be swallowed by TensorRT: the monitor records
    it, returns False from ``step_complete`` (which cancels the build) and the builder re-raises it
    (:attr:`interrupted`)."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, object] = {}
            self._top: dict[str, str] = {}
            self.phases: list[str] = []
            self.interrupted = False

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                self.phases.append(phase_name)
                if parent_phase is None:
                    self._bars[phase_name] = progress_bar(enabled, total=num_steps, desc=phase_name, unit="step",
                                                          leave=False)
                else:
                    self._top[phase_name] = self._top.get(parent_phase, parent_phase)
                    bar = self._bars.get(self._top[phase_name])
                    if bar is not None:
                        bar.set_postfix_str(phase_name, refresh=False)

        def step_complete(self, phase_name, step):
            try:
                with self._lock:
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.update(1)
            except KeyboardInterrupt:
                self.interrupted = True
            return not self.interrupted

        def phase_finish(self, phase_name):
            with self._lock:
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    return _Monitor()


def stream_writer(trt, handle):
    """An ``IStreamWriter`` into an open binary file that counts bytes and keeps the first exception.

    TensorRT swallows exceptions raised in ``write`` and still reports a successful build, so the caller
    must check :attr:`error` and :attr:`bytes_written` afterwards.
    """

    class _Writer(trt.IStreamWriter):
        def __init__(self):
            trt.IStreamWriter.__init__(self)
            self.bytes_written = 0
            self.error: BaseException | None = None

        def write(self, data):
            if self.error is not None:
                return 0
            try:
                view = memoryview(data)
                handle.write(view)
                self.bytes_written += view.nbytes
                return view.nbytes
            except BaseException as exc:  # noqa: BLE001 - TensorRT would swallow it; re-raised by the builder
                self.error = exc
                return 0

    return _Writer()


@contextlib.contextmanager
def cancel_on_sigint(monitor):
    """While the block runs, Ctrl-C (SIGINT) cancels the build through ``monitor`` instead of raising inside a
    TensorRT callback (where it would be swallowed); the caller raises KeyboardInterrupt afterwards. Only in
    the main thread (where Python delivers signals); elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        monitor.interrupted = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
