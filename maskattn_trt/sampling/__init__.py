"""The SDXL sampler over any runner (eager, ONNX Runtime, TensorRT), ``generate`` and per-token gate maps.

Modules: :mod:`.sampler` (the denoising loop), :mod:`.text` (prompt encoding), :mod:`.schedulers`,
:mod:`.backends` (runner per ``--backend`` and the checks that it fits the model), :mod:`.prompts`,
:mod:`.images`, :mod:`.gatemaps`, :mod:`.generate` (the ``generate`` / ``gates`` commands as library calls).
"""
