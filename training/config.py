"""One config system: frozen pydantic models loaded from YAML, `key.sub=value` overrides.

A leaf module: it imports no torch, trainer or model code, so loading or
printing a config is cheap; trainers and models import their section from here.
A typo in a key is an error (`extra="forbid"`); the resolved config is saved
next to every run's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_DIR = Path(__file__).parent / "configs"
Device = Literal["auto", "cpu", "cuda"]


class ConfigError(ValueError):
    """A config file or override that cannot be read or does not validate."""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(Section):
    dataset: str = "ml-100k"
    format: Literal["ml100k_atomic", "movielens_local", "amazon2023"] = "ml100k_atomic"
    path: str | None = Field(None, description="folder of local files; None = fetch ML-100k")
    data_dir: str = "data"
    protocol: Literal["temporal", "loo"] = "temporal"
    max_history: int = Field(20, ge=1)
    k_core: int = Field(0, ge=0)


class IdentifierConfig(Section):
    scheme: Literal["sid", "atomic", "titles"] = "sid"
    n_levels: int | None = Field(None, ge=1, le=4, description="None = sized for the catalog")
    n_codes: int | None = Field(None, ge=2, le=256)
    balanced: bool = True
    interaction_weight: float = Field(0.5, ge=0.0, le=1.0,
                                      description="share of co-occurrence signal in SID embeddings; 0 = text only")
    seed: int = 0


class PolicyConfig(Section):
    hidden_size: int = Field(128, ge=16)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(512, ge=16)
    max_positions: int = Field(512, ge=64)
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    base_model: str | None = None


class SFTConfig(Section):
    max_epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    warmup_steps: int = Field(100, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    window: int = Field(21, ge=2)
    stride: int = Field(10, ge=1)
    alignment: bool = True
    patience: int = Field(2, ge=1)
    valid_samples: int = Field(2000, ge=1)
    seed: int = 0
    threads: int = Field(0, ge=0, description="torch threads; 0 = leave torch's default")


class SeqConfig(Section):
    """Hyper-parameters of a sequential baseline (SASRec, GRU4Rec); saved as config.json next to model.pt."""

    hidden: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_len: int = Field(20, ge=1)
    stride: int = Field(10, ge=1, description="step between training windows of max_len + 1 items")
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(50, ge=1)
    patience: int = Field(3, ge=1)
    min_epochs: int = Field(10, ge=1, description="no early stop before this epoch (GRU4Rec plateaus early)")
    valid_samples: int = Field(2000, ge=0, description="seeded validation subset; 0 = all")
    seed: int = 0


class EvalConfig(Section):
    test_samples: int = Field(5000, ge=0, description="seeded subset size; 0 = all")
    seed: int = 0
    filter_seen: bool = False
    beam_width: int = Field(20, ge=1, le=100)
    batch_size: int = Field(64, ge=1)


class RLConfig(Section):
    """One RL engine, parts picked by name (DESIGN.md §5); the recipes in training/configs/ set these."""

    recipe: str = "grpo_basic"
    mode: Literal["direct", "reasoning"] = Field(
        "direct", description="direct: the answer alone; reasoning: sampled CoT, then a trie-constrained answer "
        "(from a reasoning-SFT bundle; training/trainers/reasoning_rl.py)")
    backend: Literal["batched", "vllm"] = Field(
        "batched", description="rollout engine: our KV-cache trie sampler, or vLLM (the cpu/gpu extra)")
    control: bool = Field(False, description="sft_continued control: CE on the target, same prompts/steps/lr")
    prompts: Literal["train", "valid_heldout"] = Field(
        "train", description="train split samples, or validation samples outside the early-stopping subset")
    steps: int = Field(200, ge=1)
    prompts_per_step: int = Field(32, ge=1)
    group_size: int = Field(16, ge=2, description="samples per prompt kept for the update (G)")
    oversample: int = Field(0, ge=0, description="draw m >= G and dedupe (riser.txt Eq. 5); 0 = off")
    inject_target: bool = Field(False, description="replace one sample of every group by the target")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus of the CoT sampling (mode=reasoning)")
    max_think_tokens: int = Field(64, ge=0, description="CoT budget before </think> is forced (mode=reasoning); "
                                  "the RL bundle decodes with it")
    reward: str = "hit"
    prefix_beta: float = Field(0.5, gt=0)
    advantage: str = "grpo"
    pass_k: int = Field(4, ge=1, description="k of the SRPO pass@k advantage")
    drop_zero_variance: bool = True
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.2, ge=0)
    dual_clip: float | None = Field(None, gt=1)
    updates_per_batch: int = Field(1, ge=1)
    kl_cov_ratio: float = Field(0.0, ge=0, le=1, description="share of tokens penalised by KL-Cov; 0 = off")
    kl_cov_beta: float = Field(1.0, ge=0)
    certainty_d: float | None = Field(None, ge=0.5, le=0.8, description="certainty-aware mask weight; None = off")
    simpo_weight: float = Field(0.0, ge=0, description="SimPO on all-failed groups; 0 = off")
    simpo_beta: float = Field(5.0, gt=0)
    simpo_gamma_ratio: float = Field(1.0, ge=0)
    ce_weight: float = Field(0.0, ge=0, description="add ce_weight x target cross-entropy to the RL loss; 0 = off")
    eval_every: int = Field(50, ge=1)
    valid_samples: int = Field(2000, ge=1)
    patience: int = Field(3, ge=1)
    seed: int = 0
    action: Literal["item", "list"] = Field(
        "item", description="one item per sample, or a list of list_length distinct items (RecLLM-R1, rl_list.py)")
    list_length: int = Field(10, ge=1, description="K: items per sampled list (action=list)")
    rechead_bundle: str | None = Field(None, description="reward rporec (RPORec stage II): the frozen stage-I "
                                       "Rechead bundle that scores the rollouts")
    rporec_negatives: int = Field(100, ge=1, description="k sampled negatives of r_ndcg (reward rporec)")
    entropy_focus: float | None = Field(None, gt=0, le=1, description="keep the gradient on this top share of "
                                        "highest-entropy tokens (RPORec: 0.2); None = all tokens (mode=reasoning)")
    kl_coef: float = Field(0.0, ge=0, description="beta of the k3 KL to the frozen start policy (action=list or "
                           "mode=reasoning); 0 = off")
    list_format_weight: float = Field(0.1, ge=0, le=1, description="f in (1-f) LCS + f format (list_lcs_recllm)")
    list_duplicate_penalty: float = Field(1.0, ge=0, description="cost of a list of k repeats (list_lcs_recllm)")
    list_invalid_penalty: float = Field(1.0, ge=0, description="cost of a list of k invalid ids (list_lcs_recllm)")
    list_length_penalty: float = Field(1.0, ge=0, description="cost of a list k items off its length (list_lcs_recllm)")


class RecheadConfig(Section):
    """RPORec stage I (rporec.txt §2.1, Alg. 1 lines 1-12): the Rechead on MiniLM embeddings of history + CoT.

    cot: "programmatic" = the CoT and answer of `training.cot.ProgrammaticTeacher` (target never shown);
    "none" = history only (the paper's "-cot" ablation). The paper gives no d, γ, k, lr or patience
    (App. C.3: "grid search"); these are lean defaults. Every text is encoded once by MiniLM (cached under
    data_dir/cache), about 10-40 texts/s per CPU core: `train_samples` caps that cost (0 = all).
    """

    name: str = Field("", description="run label; '' = rechead_<cot>. Bundle: runs/<label>-<dataset>-<protocol>/")
    cot: Literal["none", "programmatic"] = "programmatic"
    teacher_seed: int = Field(0, description="phrasing variants of the programmatic teacher")
    dim: int = Field(64, ge=4)
    gamma: float = Field(0.5, gt=0.0, lt=1.0, description="γ of Eq. 4")
    layers: int = Field(1, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    loss: Literal["sampled", "full"] = Field("sampled", description="Eq. 6 with k negatives, or full-catalog CE")
    negatives: int = Field(100, ge=1, description="k of Eq. 6")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    epochs: int = Field(20, ge=1)
    patience: int = Field(3, ge=1)
    batch_size: int = Field(256, ge=1)
    train_samples: int = Field(5000, ge=0, description="seeded subset of the training samples; 0 = all")
    valid_samples: int = Field(2000, ge=1, description="seeded validation subset for early stopping (NDCG@10)")
    seed: int = 0


class ReasoningDecodeConfig(Section):
    """Reasoning-mode decoding a bundle records in its manifest (`generation.reasoning`; gream.txt §6.1.2).

    Mirrors `training.reasoning_sft.recommender.ReasoningDecodeSettings`: n_cots CoTs per sample (K of Pass@K),
    temperature 0 = one greedy CoT; a CoT not closed by the policy gets `</think>` after max_think_tokens.
    `recommend`/`eval --pass-k K` override these with GREAM's Pass@K sampling (K CoTs, T 0.7, top-p 0.9).
    """

    n_cots: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_think_tokens: int = Field(320, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _greedy_writes_one_cot(self):
        if self.temperature == 0 and self.n_cots > 1:
            raise ValueError("greedy decoding (temperature 0) writes one CoT: n_cots > 1 needs temperature > 0")
        return self


class ReasoningSFTConfig(Section):
    """Reasoning SFT of the policy (GREAM hybrid SFT with curriculum, gream.txt §4.2-4.3); off by default.

    enabled: `train sft` writes reverse-reasoning CoTs of the teacher for the training samples and trains
    alignment/direct batches and reasoning batches in GREAM's curriculum order (`training/reasoning_sft/`),
    in place of the plain SFT loop; the bundle then also answers in reasoning mode. The fields from gamma to
    seed mirror `training.reasoning_sft.train.ReasoningSFTSettings` and replace the `sft` section's loop
    settings (epochs, lr, ...); `sft.window`, `sft.stride` and `sft.alignment` still shape the direct batches.
    valid_mode: how the best epoch is picked, NDCG@10 on `valid_samples` validation samples ranked through
    one greedy CoT ("reasoning", ~max_think_tokens forward passes per batch) or the trie beam ("direct").
    """

    enabled: bool = False
    teacher: Literal["programmatic"] = Field("programmatic", description="who writes the CoTs of the SFT data")
    teacher_seed: int = Field(0, description="phrasing variants of the programmatic teacher")
    gamma: float = Field(1.5, ge=0.0, description="curriculum pace of gream.txt §4.3")
    epochs: int = Field(3, ge=1, description="GREAM: 2 curriculum epochs + 1 uniform")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    warmup_steps: int = Field(20, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    max_reasoning_samples: int = Field(0, ge=0, description="seeded subset of the training samples; 0 = all")
    max_tokens: int = Field(512, ge=8, description="prompt + completion of a reasoning example and of decoding")
    think_in_loss: bool = False
    seed: int = 0
    valid_mode: Literal["reasoning", "direct"] = "reasoning"
    valid_samples: int = Field(500, ge=1)
    decode: ReasoningDecodeConfig = ReasoningDecodeConfig()


class R2ecConfig(Section):
    """R²ec trained with RecPO (r2ec.txt §4.2, App. C; the authors' RRec code where the text lost a value).

    reasoning=False is the "w/o reasoning" control (§5.3): the same rec head on the history alone, trained
    with the in-batch contrastive loss of Eq. 1. RecPO has no KL term (App. C), so there is no KL knob.
    Defaults are the paper's: G = 4, temperature 1.5, top-k 200, clip ε 0.2/0.28, lr 1e-5, batch 24,
    warm-up 32 steps, 512 new tokens; reward 0.95·NDCG@1000 + 0.05·softmax similarity (RRec
    `reward_ndcg_k`, `reward_softmax_weight`); similarity: dot product of L2-normalised vectors / 0.02.
    """

    name: str = Field("r2ec_recpo", description="run label")
    reasoning: bool = Field(True, description="False = the 'w/o reasoning' control (history alone, Eq. 1)")
    steps: int = Field(200, ge=1)
    prompts_per_step: int = Field(24, ge=1, description="users per step (App. C: batch size 24)")
    group_size: int = Field(4, ge=1, description="G trajectories per user (§4.2.1)")
    temperature: float = Field(1.5, gt=0, description="rollout temperature (§5.4.2, App. C)")
    top_k: int = Field(200, ge=0, description="rollout top-k; 0 = the whole vocabulary")
    max_think_tokens: int = Field(512, ge=0, description="reasoning tokens before </think> is forced")
    advantage: Literal["grpo", "rloo"] = "grpo"
    reward_ndcg_k: int = Field(1000, ge=1, description="k of the NDCG@k ranking reward")
    reward_softmax_weight: float = Field(0.05, ge=0.0, le=1.0, description="β: r = (1-β) NDCG@k + β softmax")
    reward_exclude_history: bool = Field(True, description="mask the user's history out of the reward ranking")
    similarity_temperature: float = Field(0.02, gt=0, description="τ of s(u, v) = <h_u, e_v> / τ")
    similarity_normalize: bool = Field(True, description="L2-normalise h_u and e_v before the dot product")
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.28, ge=0)
    rec_weight: float = Field(1.0, ge=0, description="weight of the recommendation term of Eq. 8")
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(32, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    refresh_every: int = Field(50, ge=1, description="steps between full recomputations of the item table")
    max_item_tokens: int = Field(64, ge=2, description="item description prompt length cap")
    item_prompt: Literal["text", "identifier_text"] = Field(
        "text", description="e_v's prompt: the item text (the paper), or the item's identifier tokens + its text "
        "(a word-level tiny base knows its items by their ids)")
    valid_samples: int = Field(500, ge=0, description="seeded validation subset for early stopping; 0 = none")
    eval_every: int = Field(50, ge=1)
    patience: int = Field(3, ge=1)
    prompt_style: Literal["tokens", "text"] = Field(
        "tokens", description="tokens: the direct layout (tiny word-level base); text: titles separated by ';' "
        "and an instruction (a pretrained text LLM, with identifiers.scheme=titles)")
    lora_rank: int = Field(0, ge=0, description="LoRA rank (peft) on a pretrained base_model; 0 = full training")
    lora_alpha: float = Field(8.0, gt=0, description="LoRA scaling numerator (scale = alpha / rank)")
    merge_lora_for_rollouts: bool = Field(True, description="sample rollouts from a merged copy of a LoRA model "
                                          "(fewer kernels per decoded token); off = sample through the adapters")
    seed: int = 0


class RunConfig(Section):
    name: str = "sft"
    runs_dir: str = "runs"
    device: Device = Field("auto", description="auto = cuda when available, else cpu; used by every command")
    data: DataConfig = DataConfig()
    identifiers: IdentifierConfig = IdentifierConfig()
    policy: PolicyConfig = PolicyConfig()
    sft: SFTConfig = SFTConfig()
    eval: EvalConfig = EvalConfig()
    baseline: SeqConfig = SeqConfig()
    rl: RLConfig = RLConfig()
    rechead: RecheadConfig = RecheadConfig()
    reasoning: ReasoningSFTConfig = ReasoningSFTConfig()
    r2ec: R2ecConfig = R2ecConfig()


def parse_override(text: str) -> tuple[list[str], object]:
    """"a.b=3" -> (["a", "b"], 3); the value is parsed as YAML (numbers, bools, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({_first_line(err)})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return raw


def list_presets() -> list[str]:
    """Names of the YAML presets shipped in training/configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_yaml(path: str | Path) -> dict:
    candidate = Path(path)
    if not candidate.is_file():
        candidate = CONFIG_DIR / f"{path}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"config {str(path)[:200]!r} not found (presets: {', '.join(list_presets())})")
    try:
        raw = yaml.safe_load(candidate.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{candidate}: not valid YAML ({_first_line(err)})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{candidate}: expected a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (a name in training/configs/ or a path) + overrides -> validated RunConfig."""
    raw = _read_yaml(path) if path else {}
    try:
        return RunConfig.model_validate(apply_overrides(raw, overrides or []))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(problems) from None


def save_config(cfg: BaseModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts, e.g. ["sft.lr: 0.003 -> 0.01"]."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(config_differences(a, b, name + "."))
        elif a != b:
            diffs.append(f"{name}: {a!r} -> {b!r}")
    return diffs


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
