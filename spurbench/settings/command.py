"""What every model command's settings share (``spufix fit``, ``discover``, ``mine``): the model, its
weights and how its features are computed, checked on construction; built by a command with every
refusal as one line (:meth:`CommandSettings.from_command`)."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ConfigDict, ValidationError, field_validator

from spurbench.adapters import check_model_name
from spurbench.errors import SpurbenchError
from spurbench.schemas import Strict, first_error_line
from spurbench.settings.features import FeatureSettings
from spurbench.settings.run import check_checkpoint

Settings = TypeVar("Settings", bound="CommandSettings")


def _path_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, PurePath) else value


# A location given as text on the command line (a file, a folder, hf://..., a benchmark's name): a
# library caller may pass a Path for it
Location = Annotated[str, BeforeValidator(_path_as_text)]


class CommandSettings(Strict):
    """A model command's settings: frozen, unknown keys refused, and every value the command would
    refuse refused here, in its words (``model``: a loadable name; ``checkpoint``: an existing file)."""

    model_config = ConfigDict(frozen=True)

    model: str  # FAMILY:SPEC
    checkpoint: Location | None = None  # local .safetensors weights for the named architecture
    features: FeatureSettings = FeatureSettings()  # frozen, so one shared default is safe

    @field_validator("model")
    @classmethod
    def _loadable_name(cls, name: str) -> str:
        check_model_name(name)
        return name

    @field_validator("checkpoint")
    @classmethod
    def _existing_checkpoint(cls, checkpoint: str | None) -> str | None:
        if checkpoint is not None:
            check_checkpoint(checkpoint)
        return checkpoint

    @classmethod
    def from_command(cls: type[Settings], **values: Any) -> Settings:
        """The settings a command's parsed values make. A value pydantic itself refuses (a type, a
        bound) is one line too, ``FIELD: MESSAGE`` (the command's own refusals already are)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SpurbenchError(first_error_line(exc)) from None

    def for_rank(self: Settings, device: str, main: bool) -> Settings:
        """These settings on one torchrun rank (``distributed.joined``): its device, and progress bars
        on rank 0 alone (``main``)."""
        features = self.features.model_copy(update={"device": device, "progress": self.features.progress and main})
        return self.model_copy(update={"features": features})
