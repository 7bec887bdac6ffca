"""The spec format v1 (DESIGN §2): pydantic models for everything a user writes.

Every model forbids unknown keys, so a typo fails instead of being ignored.
Provider-specific rules (which fields and methods a provider supports) live in each
provider's catalog entry, applied by ``validation.py``; this module knows only the
shape of the format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .providers import CATALOG

API_VERSION = "reconciler/v1"
KIND = "FineTuneJob"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PROVIDERS = tuple(CATALOG.builtin)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Metadata(Strict):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Unique job name in the specs tree: lower-case letters, digits and '-', "
        "at most 40 characters.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels; no effect on training."
    )
    previous_names: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Names this spec had before (a rename): the job of an old name is kept "
        "and moved to this one instead of cancelled and trained again (Terraform's `moved`).",
    )


class Lora(Strict):
    r: int | None = Field(default=None, ge=1, le=1024, description="LoRA rank.")
    alpha: float | None = Field(default=None, gt=0, description="LoRA alpha.")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="LoRA dropout, [0, 1).")
    trainable_modules: str | None = Field(
        default=None, description="Modules to adapt, e.g. 'all-linear'."
    )


class Hyperparameters(Strict):
    """The project's own vocabulary; each driver maps it to its provider's names."""

    epochs: int | None = Field(default=None, ge=1, le=100)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    learning_rate_multiplier: float | None = Field(
        default=None, gt=0, description="OpenAI scales its own base rate by this instead."
    )
    batch_size: int | Literal["max"] | None = Field(default=None)
    warmup_ratio: float | None = Field(default=None, ge=0, le=1)
    weight_decay: float | None = Field(default=None, ge=0)
    max_grad_norm: float | None = Field(default=None, ge=0)
    max_seq_length: int | None = Field(default=None, ge=1)
    lr_scheduler: Literal["linear", "cosine"] | None = None
    min_lr_ratio: float | None = Field(default=None, ge=0, le=1)
    num_cycles: float | None = Field(default=None, gt=0)
    n_checkpoints: int | None = Field(default=None, ge=1)
    n_evals: int | None = Field(default=None, ge=0)
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be a positive integer or 'max'")
        return v


class Dpo(Strict):
    beta: float | None = Field(default=None, gt=0, description="DPO beta.")
    rpo_alpha: float | None = Field(default=None, ge=0)
    simpo_gamma: float | None = Field(default=None, ge=0)
    normalize_logratios_by_length: bool | None = None
    reference_free: bool | None = None


class FromJob(Strict):
    job: str = Field(
        pattern=NAME_PATTERN, description="Name of the spec whose result to start from."
    )
    step: int | None = Field(
        default=None,
        ge=1,
        description="Start from this saved step of that job instead of its final result "
        "(Together: from_checkpoint JOB_ID:STEP).",
    )


class EnvRef(Strict):
    """A secret by reference: read from the environment at the moment of the call."""

    env: str = Field(pattern=ENV_NAME_PATTERN, description="Name of the environment variable.")


class Wandb(Strict):
    """Weights & Biases reporting; not a training input (it never changes the fingerprint)."""

    project: str | None = Field(default=None, min_length=1, description="W&B project.")
    name: str | None = Field(default=None, min_length=1, description="W&B run name.")
    entity: str | None = Field(default=None, min_length=1, description="W&B entity (team).")
    base_url: str | None = Field(
        default=None, pattern=r"^https?://", description="A dedicated W&B server's URL."
    )
    api_key: EnvRef | None = Field(default=None, description="The W&B key: {env: NAME}.")


class HuggingFace(Strict):
    """Hugging Face Hub: a repo to start from and/or one to push the result to."""

    model: str | None = Field(
        default=None,
        min_length=1,
        description="Hub repo to start training from (its architecture should match `model`).",
    )
    revision: str | None = Field(
        default=None, min_length=1, description="Branch, tag or commit of that repo."
    )
    output_repo: str | None = Field(
        default=None, min_length=1, description="Hub repo to upload the fine-tuned model to."
    )
    token: EnvRef | None = Field(default=None, description="The Hub token: {env: NAME}.")

    @model_validator(mode="after")
    def _revision_needs_model(self) -> HuggingFace:
        if self.revision is not None and self.model is None:
            raise ValueError("revision: given without model (the repo it is a revision of)")
        return self


class Policy(Strict):
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts with a retryable failure, in total."
    )
    on_delete: Literal["cancel", "orphan"] = Field(
        default="cancel", description="What removing the spec does to a running job."
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="Refuse a create whose estimate exceeds this."
    )
    self_heal: bool = Field(
        default=False, description="Re-create a job someone cancelled outside reconciler."
    )


class JobSpec(Strict):
    provider: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
        description=f"Where the job runs: a built-in provider ({', '.join(PROVIDERS)}) or a "
        "profile named in reconciler.yaml's `providers`.",
    )
    model: str = Field(min_length=1, description="The provider's base model name.")
    training_file: str = Field(min_length=1, description="JSONL path relative to this YAML file.")
    validation_file: str | None = Field(default=None, min_length=1)
    method: Literal["sft", "dpo"] = "sft"
    lora: Lora | bool = Field(
        default=True,
        description="LoRA settings; true for the provider's default LoRA, false for a full "
        "fine-tune.",
    )
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    dpo: Dpo | None = None
    suffix: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    from_: FromJob | None = Field(default=None, alias="from")
    train_on_inputs: bool | Literal["auto"] | None = Field(
        default=None,
        description="SFT only: train on the prompt/user turns too (true), mask them (false), "
        "or let the data format decide (auto, the default).",
    )
    train_vision: bool | None = Field(
        default=None, description="Also train a vision model's image encoder."
    )
    wandb: Wandb | None = Field(default=None, description="Report the run to Weights & Biases.")
    huggingface: HuggingFace | None = Field(
        default=None, description="Start from and/or push to the Hugging Face Hub."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific fields, passed through verbatim."
    )
    suspend: bool = Field(default=False, description="Leave this job alone: no create, no cancel.")
    policy: Policy = Field(default_factory=Policy)

    @model_validator(mode="after")
    def _dpo_only_with_dpo(self) -> JobSpec:
        if self.dpo is not None and self.method != "dpo":
            raise ValueError("dpo: settings given but method is not 'dpo'")
        if self.train_on_inputs is not None and self.method != "sft":
            raise ValueError("train_on_inputs: only with method 'sft'")
        if self.from_ is not None and self.huggingface and self.huggingface.model:
            raise ValueError("from and huggingface.model: a job starts from one of them, not both")
        return self


class FineTuneJob(Strict):
    """One document of kind FineTuneJob: the desired state of one named job."""

    apiVersion: Literal["reconciler/v1"]
    kind: Literal["FineTuneJob"]
    metadata: Metadata
    spec: JobSpec

    @property
    def name(self) -> str:
        return self.metadata.name


def json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to validate spec files."""
    schema = FineTuneJob.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/reconciler/reconciler/schema/finetunejob-v1.json"
    schema["title"] = "reconciler FineTuneJob (reconciler/v1)"
    return schema
