"""Helpers for adapter families (built-in and plugins): checkpoints, linear heads, short lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from spurbench.errors import SpurbenchError

_WRAPPER_PREFIXES = ("module.", "model.")  # added by DataParallel / training wrappers


def short_list(names: Sequence[str], limit: int = 10) -> str:
    """'a, b, c' or 'a, b, ... (N in all)': keeps one-line errors short."""
    shown = ", ".join(names[:limit]) or "none"
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def strip_wrapper_prefix(state: dict[str, torch.Tensor], expected: Iterable[str]) -> dict[str, torch.Tensor]:
    expected = set(expected)
    for prefix in _WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in expected):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A local .safetensors state dict; SpurbenchError for a missing, pickled or unreadable file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise SpurbenchError(f"checkpoint {str(path)!r} must be a .safetensors file (pickled checkpoints are not loaded)")
    if not path.is_file():
        raise SpurbenchError(f"checkpoint {str(path)!r} does not exist")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpurbenchError(f"checkpoint {str(path)!r} is not a readable safetensors file: {first_line}") from exc


LABEL_SPACE_KEY = "spurbench.label_space"


def checkpoint_label_space(path: str | Path) -> str | None:
    """The label space a checkpoint's safetensors metadata names (``spurbench.label_space``), if any:
    an architecture fine-tuned on a benchmark's own classes says so, since its head
    size alone cannot tell which classes its columns are."""
    with safe_open(str(path), framework="pt") as handle:  # read_safetensors has checked the file
        value = (handle.metadata() or {}).get(LABEL_SPACE_KEY)
    if value is not None and not (value.strip() and value.isprintable()):
        raise SpurbenchError(f"checkpoint {str(path)!r}: metadata {LABEL_SPACE_KEY} {value!r} is not a label space name")
    return value


def load_checkpoint_into(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Strictly load ``state`` into ``model``; a one-line SpurbenchError summarises any mismatch."""
    expected = model.state_dict()
    state = strip_wrapper_prefix(state, expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
        if wrong:
            k = wrong[0]
            problems.append(f"{len(wrong)} shape mismatches (e.g. {k!r}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})")
        raise SpurbenchError(f"checkpoint {str(path)!r} does not fit {what}: {', '.join(problems)}")
    model.load_state_dict(state, strict=True)


def linear_parameters(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) of a linear layer; a zero bias when it has none."""
    weight = layer.weight.detach()
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return weight, bias


class LinearClassifierMixin:
    """``head`` and ``to`` for adapters that wrap one ``self.model`` whose last layer is ``self._classifier``."""

    model: nn.Module
    _classifier: nn.Linear

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        return linear_parameters(self._classifier)

    def to(self, device: str | torch.device):
        self.model.to(device)
        return self


def tokens_to_grid(prefix: int, grid: tuple[int, int] | None = None, batch_first: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """pytorch-grad-cam's ``reshape_transform`` for a ViT block: tokens [B, N, C] (or [N, B, C]) with
    ``prefix`` leading class/register tokens -> [B, C, rows, cols], patches in row-major order (the
    order a patch-embedding convolution flattens them in); a square grid unless ``grid`` is given."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = (tokens if batch_first else tokens.transpose(0, 1))[:, prefix:]
        rows, cols = grid or (round(patches.shape[1] ** 0.5),) * 2
        return patches.reshape(patches.shape[0], rows, cols, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


def timm_cam_layers(model: nn.Module, name: str) -> tuple[list[nn.Module], Callable[[torch.Tensor], torch.Tensor] | None]:
    """GradCAM layer of a timm model: the last stage it lists in ``feature_info``; for token models
    (ViTs: a ``num_prefix_tokens`` attribute) the first norm of the last block, its tokens (prefix
    tokens dropped) on their patch grid. Why not the last block's output: with class-token pooling its
    patch tokens no longer reach the features, so their gradient, and the CAM, is zero; before the last
    attention they still do (the layer pytorch-grad-cam's ViT example uses)."""
    info = getattr(model, "feature_info", None)
    if not info:
        raise SpurbenchError(f"{name}: timm lists no feature stages for it, so no GradCAM layer")
    last = info[-1] if isinstance(info, list) else info.info[-1]
    layer = model.get_submodule(last["module"])
    prefix = getattr(model, "num_prefix_tokens", None)
    if prefix is None:
        return [layer], None
    return [getattr(layer, "norm1", layer)], tokens_to_grid(prefix)
