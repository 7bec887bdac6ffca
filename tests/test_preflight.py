"""Pre-flight checks online (``Driver.preflight``): the spec's model against what the
provider lists — Together's per-model limits, OpenAI's and Mistral's model lists — each
problem one line naming the spec field; cached per driver; a provider that cannot be asked
raises the usual ProviderError. First the pure rules, then each driver on a respx router,
then every driver against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import emulator_fixtures as fx
import httpx
import pytest
from driver_fixtures import make_driver, new_router

from reconciler.emulator import EmulatorThread
from reconciler.emulator.together.jobs import limits as emulator_limits
from reconciler.errors import ErrorKind, ProviderError
from reconciler.model import DesiredJob
from reconciler.providers.base import DriverBase
from reconciler.providers.pool import DriverPool
from reconciler.providers.together.mapping import limit_problems
from reconciler.spec import JobSpec

TG_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"  # full and LoRA, max_rank 64
TG_BIG = "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"  # LoRA only
MODELS = {"together": TG_MODEL, "openai": "gpt-4.1-mini-2025-04-14", "mistral": "open-mistral-7b"}

emulator_server, emulator = fx.emulator_server, fx.emulator


def job(provider: str = "together", **spec: Any) -> DesiredJob:
    body = {
        "provider": provider,
        "model": MODELS[provider],
        "training_file": "data/train.jsonl",
        **spec,
    }
    return DesiredJob(
        name="support-bot",
        spec=JobSpec.model_validate(body),
        file="s.yaml",
        training_sha256="0" * 64,
    )


def tg_problems(limits: dict[str, Any] | None, **spec: Any) -> list[str]:
    from reconciler.providers.base import preflight_request

    return limit_problems(preflight_request(job(**spec)), limits)


# ---------------------------------------------------------------- Together's limits, pure


def test_a_spec_within_the_limits_has_no_problems() -> None:
    hp = {"epochs": 3, "batch_size": 16, "learning_rate": 1e-5, "max_seq_length": 4096}
    assert tg_problems(emulator_limits(TG_MODEL), lora={"r": 16}, hyperparameters=hp) == []
    assert tg_problems(emulator_limits(TG_MODEL), lora=False) == []
    assert tg_problems(emulator_limits(TG_MODEL), hyperparameters={"batch_size": "max"}) == []


def test_a_model_without_limits_is_not_one_together_fine_tunes() -> None:
    assert tg_problems(None, model="acme/foo") == [
        "model: 'acme/foo' is not a model Together can fine-tune"
    ]


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (
            {"lora": {"r": 128}},
            f"lora.r: 128 is over Together's lora_training.max_rank 64 for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"batch_size": 2}},
            "hyperparameters.batch_size: 2 is under Together's lora_training.min_batch_size 8 "
            f"for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"batch_size": 128}},
            "hyperparameters.batch_size: 128 is over Together's lora_training.max_batch_size 64 "
            f"for {TG_MODEL}",
        ),
        (  # DPO has its own, lower ceiling
            {"method": "dpo", "hyperparameters": {"batch_size": 48}},
            "hyperparameters.batch_size: 48 is over Together's lora_training.max_batch_size_dpo "
            f"32 for {TG_MODEL}",
        ),
        (  # full training has its own bounds
            {"lora": False, "hyperparameters": {"batch_size": 48}},
            "hyperparameters.batch_size: 48 is over Together's full_training.max_batch_size 32 "
            f"for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"epochs": 30}},
            f"hyperparameters.epochs: 30 is over Together's max_num_epochs 20 for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"learning_rate": 1e-9}},
            "hyperparameters.learning_rate: 1e-09 is under Together's min_learning_rate 1e-08 "
            f"for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"max_seq_length": 100}},
            "hyperparameters.max_seq_length: 100 is under Together's min_max_seq_length 512 "
            f"for {TG_MODEL}",
        ),
        (
            {"hyperparameters": {"n_checkpoints": 25}},
            "hyperparameters.n_checkpoints: 25 is over Together's max_num_checkpoints 20 "
            f"for {TG_MODEL}",
        ),
        (
            {"lora": {"r": 8, "trainable_modules": "q_proj,gate_proj"}},
            "lora.trainable_modules: gate_proj not in Together's lora_training.target_modules "
            f"for {TG_MODEL} (q_proj, k_proj, v_proj, o_proj, up_proj, down_proj)",
        ),
        (  # a value an option set is named by the option
            {"options": {"batch_size": 4}},
            "options.batch_size: 4 is under Together's lora_training.min_batch_size 8 "
            f"for {TG_MODEL}",
        ),
    ],
)
def test_each_limit_broken_is_one_line_naming_the_field(spec: dict[str, Any], line: str) -> None:
    assert tg_problems(emulator_limits(TG_MODEL), **spec) == [line]


def test_full_fine_tuning_of_a_lora_only_model() -> None:
    assert tg_problems(emulator_limits(TG_BIG), model=TG_BIG, lora=False) == [
        f"lora: Together offers no full fine-tuning (lora: false) for {TG_BIG}"
    ]


def test_limits_the_document_leaves_out_are_not_checked() -> None:
    sparse = {"model_name": TG_MODEL, "lora_training": {"max_rank": 8}}
    assert tg_problems(sparse, hyperparameters={"epochs": 99, "batch_size": 1}) == []
    assert tg_problems(sparse, lora={"r": 9})[0].startswith("lora.r: 9 is over")


# ---------------------------------------------------------------- drivers on a router


def test_together_asks_the_limits_once_per_model() -> None:
    router = new_router("together")
    route = router.get("fine-tunes/models/limits").respond(200, json=emulator_limits(TG_MODEL))
    driver = make_driver("together", router).driver
    assert driver.preflight(job(lora={"r": 128})) == [
        f"lora.r: 128 is over Together's lora_training.max_rank 64 for {TG_MODEL}"
    ]
    assert driver.preflight(job()) == []
    assert route.call_count == 1
    assert route.calls.last.request.url.params["model_name"] == TG_MODEL


def test_together_404_means_a_model_it_does_not_fine_tune() -> None:
    router = new_router("together")
    router.get("fine-tunes/models/limits").respond(404, json={"message": "model acme/x not found"})
    assert make_driver("together", router).driver.preflight(job(model="acme/x")) == [
        "model: 'acme/x' is not a model Together can fine-tune"
    ]


@pytest.mark.parametrize("provider", ["together", "openai", "mistral"])
def test_a_provider_that_cannot_be_asked_raises_provider_error(provider: str) -> None:
    router = new_router(provider)
    router.route().mock(side_effect=httpx.ConnectError("refused"))
    fake = make_driver(provider, router)
    with pytest.raises(ProviderError) as caught:
        fake.driver.preflight(job(provider))
    assert caught.value.provider == provider and caught.value.kind is ErrorKind.RETRYABLE
    assert fake.api_sleeps  # retried on the shared schedule first


def test_openai_only_a_model_the_key_cannot_see_is_a_problem() -> None:
    router = new_router("openai")
    listed = {"object": "list", "data": [{"id": MODELS["openai"], "object": "model"}]}
    route = router.get("models").respond(200, json=listed)
    driver = make_driver("openai", router).driver
    assert driver.preflight(job("openai")) == []
    assert driver.preflight(job("openai", model="gpt-9")) == [
        "model: 'gpt-9' is not a model OpenAI lists for this key (GET /models)"
    ]
    assert route.call_count == 1


def test_mistral_reads_fine_tuning_from_the_model_card() -> None:
    router = new_router("mistral")
    cards = [
        {"id": "open-mistral-7b", "capabilities": {"fine_tuning": True}, "aliases": []},
        {
            "id": "mistral-small-2409",
            "capabilities": {"fine_tuning": True},
            "aliases": ["mistral-small-latest"],
        },
        {"id": "mistral-embed", "capabilities": {"fine_tuning": False}},
    ]
    route = router.get("models").respond(200, json={"object": "list", "data": cards})
    driver = make_driver("mistral", router).driver
    assert driver.preflight(job("mistral")) == []
    assert driver.preflight(job("mistral", model="mistral-small-latest")) == []  # an alias
    assert driver.preflight(job("mistral", model="mistral-embed")) == [
        "model: 'mistral-embed' cannot be fine-tuned at Mistral (capabilities.fine_tuning)"
    ]
    assert driver.preflight(job("mistral", model="nope")) == [
        "model: 'nope' is not a model Mistral lists for this key (GET /v1/models)"
    ]
    assert route.call_count == 1


def test_a_driver_without_online_checks_reports_nothing() -> None:
    class Quiet(DriverBase):
        provider = "quiet"

    assert Quiet(api=None).preflight(job()) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------- against the emulator


@pytest.fixture
def pool(emulator: EmulatorThread) -> Iterator[DriverPool]:
    env = {}
    for name in MODELS:
        env[f"{name.upper()}_API_KEY"] = fx.KEY
        env[f"{name.upper()}_BASE_URL"] = f"{emulator.url}/{name}/v1"
    drivers = DriverPool(env, sleep=lambda _s: None)
    yield drivers
    drivers.close()


@pytest.mark.parametrize("provider", ["together", "openai", "mistral"])
def test_every_emulated_provider_answers_preflight(pool: DriverPool, provider: str) -> None:
    driver = pool.get(provider)
    assert driver.preflight(job(provider)) == []
    problems = driver.preflight(job(provider, model="acme/not-a-model"))
    assert len(problems) == 1 and problems[0].startswith("model: 'acme/not-a-model' is not")


def test_the_emulator_answers_as_it_creates(pool: DriverPool) -> None:
    together = pool.get("together")
    assert together.preflight(job(lora={"r": 128})) == [
        f"lora.r: 128 is over Together's lora_training.max_rank 64 for {TG_MODEL}"
    ]
    assert together.preflight(job(model=TG_BIG, lora=False)) == [
        f"lora: Together offers no full fine-tuning (lora: false) for {TG_BIG}"
    ]
    assert pool.get("mistral").preflight(job("mistral", model="mistral-embed")) == [
        "model: 'mistral-embed' cannot be fine-tuned at Mistral (capabilities.fine_tuning)"
    ]


def test_emulated_mistral_models_fit_the_spec(emulator: EmulatorThread) -> None:
    with fx.http_client(emulator.url) as http:
        listed = http.get("/mistral/v1/models").json()
        fx.conforms_to_path("mistral", "GET", "/v1/models", listed)
        ids = {card["id"]: card for card in listed["data"]}
        assert ids["open-mistral-7b"]["capabilities"]["fine_tuning"] is True
        assert ids["mistral-embed"]["capabilities"]["fine_tuning"] is False
        one = http.get("/mistral/v1/models/open-mistral-7b").json()
        fx.conforms_to_path("mistral", "GET", "/v1/models/{model_id}", one)
        assert one == ids["open-mistral-7b"]
        assert http.get("/mistral/v1/models/acme").status_code == 404
        assert http.get("/mistral/v1/models", headers={"Authorization": ""}).status_code == 401
