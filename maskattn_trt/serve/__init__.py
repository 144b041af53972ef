"""``maskattn-trt serve``: MaskAttn-SDXL behind Ray Serve, batching concurrent requests into one UNet batch.

Modules: :mod:`.schema` (the JSON API and its validation), :mod:`.batching` (which queued images share a UNet
call), :mod:`.model` (pipeline + runner of one replica; the only module that imports the sampler),
:mod:`.app` (the Ray Serve deployment and its HTTP routes), :mod:`.server` (start / stop),
:mod:`.client` (a small stdlib HTTP client). ``ray`` is imported only by :mod:`.app` and :mod:`.server`
(an optional extra: ``pip install -e '.[serve]'``).
"""
