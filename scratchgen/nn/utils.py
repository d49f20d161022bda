"""``torch.nn.utils``-style names: spectral norm and gradient clipping."""
from scratchgen.nn.spectral_norm import remove_spectral_norm, spectral_norm  # noqa: F401
from scratchgen.optim.clip import clip_grad_norm_, clip_grad_value_  # noqa: F401

__all__ = ["spectral_norm", "remove_spectral_norm", "clip_grad_norm_", "clip_grad_value_"]
