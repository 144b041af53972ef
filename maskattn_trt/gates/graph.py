"""The UNet with the exported graph's flat signature: the one module both the exporter and the eager runner call."""

from __future__ import annotations

from torch import nn

from ..spec import UNetIOSpec
from .install import gate_processors


class UNetGraph(nn.Module):
    """``(sample, timestep, encoder_hidden_states, text_embeds, time_ids) -> noise_pred [, gate:<site> ...]``."""

    def __init__(self, unet: nn.Module, spec: UNetIOSpec):
        super().__init__()
        self.unet = unet
        self.spec = spec

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        processors = gate_processors(self.unet) if self.spec.gate_sites else {}
        for site in self.spec.gate_sites:
            processors[site].record = True
        out = self.unet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
            return_dict=False,
        )[0]
        if not self.spec.gate_sites:
            return out
        gates = []
        for site in self.spec.gate_sites:
            gates.append(processors[site].last_gate.to(out.dtype))
            processors[site].record = False
            processors[site].last_gate = None
        return (out, *gates)
