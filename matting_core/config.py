"""Architecture configuration: the one record a checkpoint carries so it always rebuilds the right model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

#: Inference default of ``EngineOptions.clear_background`` (and of the ONNX and fast-path runtimes): alpha below
#: this in cells the coarse trimap calls background is set to 0. Measured on the default model (held-out sets,
#: models/README.md): SAD -24% on 720p and -29% on 1080p room composites, -3% on photos; 0 = the paper's plain paste.
CLEAR_BACKGROUND_BELOW = 0.3

#: Inference default of ``EngineOptions.fill_foreground`` (and of the ONNX and fast-path runtimes): alpha in cells the
#: coarse trimap calls foreground is divided by this and clipped to 1, so alpha at or above it becomes 1. Measured
#: on the default model with clearing on (held-out sets, models/README.md): SAD -15% on photos, -4% on 720p and -5%
#: on 1080p room composites, the astronaut's face 0.69 -> 0.77 mean alpha; 1 = the paper's plain paste.
FILL_FOREGROUND_AT = 0.8

#: Inference default of ``EngineOptions.drop_islands`` (and of the ONNX and fast-path runtimes): a patch of alpha
#: apart from the largest one, with under this share of solid (alpha > 0.95) cells, is set to 0
#: (``regions.drop_unsure_islands``). Chosen on training material (``evaluate_default.py --seen``: SAD -6.7% on
#: 1080p and -6.8% on 720p room composites, photos -0.5%); on the held-out sets SAD -6.0% at 1080p and -7.6% at
#: 720p (100 composites each), photos unchanged (models/README.md); 0 = off.
DROP_ISLANDS_BELOW = 0.25


class ConfigError(ValueError):
    """A model configuration that cannot describe a valid model."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the two-stage model (defaults = the paper's default model, section 4.1).

    Coarse network: Swin-T (embed 96, depths 2/2/6/2, heads 3/6/12/24, window 7) on the frame tokenised with
    ``patch_size`` 16. Refinement: ``region_size`` 8 regions, ``token_dim`` 128 tokens, CRA with ``cra_heads``
    heads over the ``knn_k`` nearest regions and a relative-position table of search range ``search_range``.
    """

    patch_size: int = 16
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    drop_path_rate: float = 0.1
    decoder_channels: tuple[int, ...] = (256, 128, 64)
    region_size: int = 8
    token_dim: int = 128
    cra_heads: int = 8
    knn_k: int = 8
    search_range: int = 4
    use_cra: bool = True

    def __post_init__(self) -> None:
        problems = []
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            problems.append("depths and num_heads need 4 entries (Swin has 4 stages)")
        if len(self.decoder_channels) != 3:
            problems.append("decoder_channels needs 3 entries (1/64, 1/32, 1/16)")
        if self.patch_size != 2 * self.region_size:
            problems.append(
                f"patch_size ({self.patch_size}) must be 2 x region_size ({self.region_size}): the decoder's "
                "pixel-shuffle turns the 1/patch map into the 1/region map"
            )
        if self.region_size != 8:
            problems.append("the refinement network is built for 8x8 regions (region_size=8)")
        if self.embed_dim <= 0 or any(self.embed_dim * 2**i % h for i, h in enumerate(self.num_heads)):
            problems.append("each stage's width (embed_dim * 2^i) must divide by its number of heads")
        if self.token_dim % self.cra_heads:
            problems.append("token_dim must divide by cra_heads")
        if self.knn_k < 1 or self.search_range < 1:
            problems.append("knn_k and search_range must be >= 1")
        if problems:
            raise ConfigError("invalid ModelConfig: " + "; ".join(problems))

    @property
    def bias_table_size(self) -> int:
        """(2s-1)^2 in-range relative positions + 1 shared out-of-range slot (paper Fig. 2)."""
        return (2 * self.search_range - 1) ** 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return dataclass_from_dict(cls, data, "ModelConfig")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model config is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("model config JSON must be an object")
        return cls.from_dict(data)


_T = TypeVar("_T")


def dataclass_from_dict(cls: type[_T], data: Any, section: str, error: type[ValueError] = ConfigError) -> _T:
    """Build a settings dataclass from parsed JSON/TOML, naming the section in every error.

    Unknown keys are errors rather than ignored (a typo must not silently fall back to a default); lists
    become tuples because JSON and TOML have no tuples; the dataclass's own checks give the other messages.
    """
    if not isinstance(data, dict):
        raise error(f"{section} must be a table/object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"unknown setting(s) {unknown} in {section}; known: {sorted(known)}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except (TypeError, ValueError) as exc:
        raise error(f"{section}: {exc}") from exc
