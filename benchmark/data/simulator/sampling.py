"""Simulator sampling: draw queries, texts and the dense observation blocks of both splits from
seeded streams (docs/simulator.md, "Generative model")."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from tqdm.auto import tqdm

from benchmark.data.dataset import DarsDataset, ObservationBlock, TruthTable
from benchmark.data.schema import CONTEXT_CHARS
from benchmark.data.simulator.config import (
    SIMULATOR_VERSION,
    SimulatorConfig,
    config_hash,
    n_observations,
)
from benchmark.data.simulator.intstream import BoundedInts
from benchmark.data.simulator.text import QueryText, make_query_text, rewrite_views
from benchmark.data.simulator.truth import TruthDetail, pair_truth

_STREAM_WORLD, _STREAM_TRAIN_Q, _STREAM_TRAIN_OBS, _STREAM_TEST_Q, _STREAM_TEST_OBS = range(5)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(stream,)))


@dataclass(frozen=True)
class SimulatedSplit:
    """One simulated split: query table, dense observations, per-row extras, truth.

    Attributes:
        queries: one row per query: ``query_id``, ``topic``, ``difficulty``,
            ``original_question``, ``question`` (original view as shown, options included),
            ``context``, ``gold``, ``text`` (docs/spec.md §5 feature text).
        view_questions: ``[Q][V]`` ``input_question`` of each view (``-1`` view: the original).
        view_prompts: ``[Q][V]`` ``question`` field of each view (options appended).
        blocks: ``{"train": ...}`` or ``{"prompt_variation": ..., "decoding_variation": ...}``,
            raw USD costs.
        prompt_tokens, completion_tokens: int ``[Q, M, V, S]`` per block (same keys).
        truncated, parse_success: bool ``[Q, M, V, S]`` per block.
        temperatures: ``[S]`` decode temperature per block.
        truth / detail: exact pair quantities.
        base_logit: ``[Q, M]`` the pair's logit before rewrite and decode noise.
    """

    split: str
    queries: pd.DataFrame
    view_questions: dict[str, list[list[str]]]
    view_prompts: dict[str, list[list[str]]]
    blocks: dict[str, ObservationBlock]
    prompt_tokens: dict[str, np.ndarray]
    completion_tokens: dict[str, np.ndarray]
    truncated: dict[str, np.ndarray]
    parse_success: dict[str, np.ndarray]
    temperatures: dict[str, np.ndarray]
    truth: TruthTable
    detail: TruthDetail
    base_logit: np.ndarray


@dataclass(frozen=True)
class SimulatedData:
    """A whole simulated dataset in memory (what :func:`write_simulated` writes).

    Attributes:
        cfg, seed, name: how it was made.
        skill: ``[M, K]`` logit skill per model and topic.
        train, test: :class:`SimulatedSplit`.
    """

    cfg: SimulatorConfig
    seed: int
    name: str
    skill: np.ndarray
    train: SimulatedSplit
    test: SimulatedSplit

    @property
    def models(self) -> tuple[str, ...]:
        return self.cfg.model_names

    def model_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": [m.name for m in self.cfg.models],
                "price_in": [m.price_in for m in self.cfg.models],
                "price_out": [m.price_out for m in self.cfg.models],
                "params_b": [
                    np.nan if m.params_b is None else float(m.params_b) for m in self.cfg.models
                ],
            }
        )

    def to_dataset(self) -> DarsDataset:
        """The same data as a :class:`DarsDataset` (raw USD costs, truth attached)."""
        return DarsDataset(
            name=self.name,
            models=self.models,
            train=self.train.blocks["train"],
            test_rewrite=self.test.blocks["prompt_variation"],
            test_decoding=self.test.blocks["decoding_variation"],
            train_queries=self.train.queries.copy(),
            test_queries=self.test.queries.copy(),
            model_table=self.model_table(),
            train_truth=self.train.truth,
            test_truth=self.test.truth,
            source={
                "simulator": SIMULATOR_VERSION,
                "seed": self.seed,
                "config_hash": config_hash(self.cfg, self.seed),
            },
        )


def _skill_matrix(cfg: SimulatorConfig, rng: np.random.Generator) -> np.ndarray:
    m, k = len(cfg.models), len(cfg.topics)
    base = cfg.skill_scale * np.array([mod.skill for mod in cfg.models], dtype=float)
    skill = np.repeat(base[:, None], k, axis=1)
    if cfg.specialists is not None:
        for topic, spec in enumerate(cfg.specialists):
            if spec >= 0:
                skill[spec, topic] += cfg.specialist_bonus
    skill += cfg.topic_skill_scale * rng.standard_normal((m, k))
    return skill


def _feature_text(context: str, question: str) -> str:
    """docs/spec.md §5 feature text: ``context[:1200] + "\\nQuestion: " + question`` (no context: question)."""
    return f"{context[:CONTEXT_CHARS]}\nQuestion: {question}" if context else question


def _simulate_split(
    cfg: SimulatorConfig,
    split: str,
    n_queries: int,
    skill: np.ndarray,
    rng_q: np.random.Generator,
    rng_obs: np.random.Generator,
) -> SimulatedSplit:
    M = len(cfg.models)
    K = len(cfg.topics)
    # --- queries: topic, difficulty, pair noise, clause count, text --------------------------
    weights = np.ones(K) if cfg.topic_weights is None else np.asarray(cfg.topic_weights, float)
    topic = rng_q.choice(K, size=n_queries, p=weights / weights.sum())
    difficulty = cfg.difficulty_mean + cfg.difficulty_std * rng_q.standard_normal(n_queries)
    pair_eps = rng_q.standard_normal((n_queries, M))
    n_clauses = np.clip(
        np.rint(cfg.clauses_base + cfg.clauses_difficulty_slope * difficulty
                + 0.5 * rng_q.standard_normal(n_queries)),
        0, cfg.max_clauses,
    ).astype(int)
    base_logit = skill[:, topic].T - difficulty[:, None] + cfg.pair_noise * pair_eps  # [Q, M]

    reading = cfg.question_style == "reading"
    is_train = split == "train"
    n_rew = cfg.n_rewrites if is_train else cfg.n_test_rewrites
    progress = tqdm(zip(topic, n_clauses), total=n_queries, desc=f"simulating {split} queries",
                    disable=None, delay=2.0, leave=False)  # fmt: skip
    # The text's many small integers come from rng_q's stream exactly as rng_q.integers would
    # draw them, without numpy's per-call cost (benchmark/data/simulator/intstream.py).
    ints = BoundedInts(rng_q)
    texts = [make_query_text(cfg.question_style, cfg.topics[t], int(c), ints) for t, c in progress]
    originals = [
        qt.render(qt.original_choices(), list(range(len(qt.conditions))), False, reading) for qt in texts
    ]
    rewrites = [rewrite_views(qt, n_rew, reading, ints) for qt in texts]
    ints.close()

    def shown(qt: QueryText, q_text: str) -> str:
        return f"{q_text}\n{qt.options}" if qt.options else q_text

    contexts = [qt.passage for qt in texts]
    # Prompt tokens: identical for every view of a query (views have equal word counts).
    n_words = np.array(
        [len(shown(qt, o).split()) + len(qt.passage.split()) for qt, o in zip(texts, originals)], float
    )
    tok_factor = np.array([m.tokenizer_factor for m in cfg.models])
    prompt_tokens = np.rint(
        tok_factor[None, :] * (cfg.prompt_overhead_tokens + cfg.tokens_per_word * n_words[:, None])
    ).astype(np.int64)  # [Q, M]
    verbosity = cfg.verbosity_scale * np.array([m.verbosity for m in cfg.models])
    completion_median = verbosity[None, :] * np.exp(cfg.length_difficulty_slope * difficulty)[:, None]

    query_ids = [f"{split}-{i:04d}" for i in range(n_queries)]
    queries = pd.DataFrame(
        {
            "query_id": query_ids,
            "topic": [cfg.topics[t] for t in topic],
            "difficulty": difficulty,
            "original_question": originals,
            "question": [shown(qt, o) for qt, o in zip(texts, originals)],
            "context": contexts,
            "gold": [qt.gold for qt in texts],
            "wrong_answer": [qt.wrong[0] for qt in texts],
            "text": [_feature_text(c, o) for c, o in zip(contexts, originals)],
        }
    )

    # --- observations -------------------------------------------------------------------------
    if is_train:
        layout = {
            "train": (
                np.arange(n_rew), np.arange(cfg.n_decodes), np.full(cfg.n_decodes, cfg.temperature), True
            ),
        }
    else:
        n_t = len(cfg.test_temperatures)
        layout = {
            "prompt_variation": (np.arange(n_rew), np.zeros(1, int), np.array([cfg.temperature]), True),
            "decoding_variation": (
                np.array([-1]), np.arange(n_t), np.array(cfg.test_temperatures), False
            ),
        }

    blocks, ptoks, ctoks, truncs, parses, temps = {}, {}, {}, {}, {}, {}
    view_questions: dict[str, list[list[str]]] = {}
    view_prompts: dict[str, list[list[str]]] = {}
    g = cfg.chance_floor
    price_in = np.array([m.price_in for m in cfg.models])
    price_out = np.array([m.price_out for m in cfg.models])
    for key, (view_ids, decode_ids, temperatures, rewritten) in layout.items():
        V, S = len(view_ids), len(decode_ids)
        shape = (n_queries, M, V, S)
        if rewritten:
            shared = rng_obs.standard_normal((n_queries, 1, V))
            own = rng_obs.standard_normal((n_queries, M, V))
            rho = cfg.input_noise_shared
            z = cfg.input_noise * (np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own)
            view_questions[key] = [list(r) for r in rewrites]
            view_prompts[key] = [[shown(qt, v) for v in r] for qt, r in zip(texts, rewrites)]
        else:
            z = np.zeros((n_queries, M, V))
            view_questions[key] = [[o] for o in originals]
            view_prompts[key] = [[shown(qt, o)] for qt, o in zip(texts, originals)]
        s_out = np.array([cfg.output_noise_at(t) for t in temperatures])  # [S]
        e = rng_obs.standard_normal(shape)
        logit = base_logit[:, :, None, None] + z[..., None] + s_out * e
        p = g + (1.0 - g) * expit(logit)
        u_hit = rng_obs.random(shape)
        if cfg.task == "binary":
            y0 = (u_hit < p).astype(float)
        else:
            u_exact = rng_obs.random(shape)
            pc = np.clip(p, 1e-12, 1.0 - 1e-12)
            beta = rng_obs.beta(pc * cfg.f1_concentration, (1.0 - pc) * cfg.f1_concentration)
            y0 = np.where(u_exact < cfg.f1_exact_share, (u_hit < p).astype(float), beta)
        log_med = np.log(completion_median)[:, :, None, None]
        log_x = log_med + cfg.completion_sigma * rng_obs.standard_normal(shape)
        raw = np.maximum(1, np.rint(np.exp(log_x))).astype(np.int64)
        truncated = raw >= cfg.max_tokens
        comp = np.minimum(raw, cfg.max_tokens)
        parse_fail = rng_obs.random(shape) < cfg.parse_failure_rate
        ok = ~truncated & ~parse_fail
        score = np.where(ok, y0, 0.0)
        pt = np.broadcast_to(prompt_tokens[:, :, None, None], shape).copy()
        cost = pt * price_in[None, :, None, None] + comp * price_out[None, :, None, None]
        blocks[key] = ObservationBlock(
            score=score,
            cost=cost,
            present=np.ones(shape, dtype=bool),
            view_ids=np.asarray(view_ids, dtype=np.int64),
            decode_ids=np.asarray(decode_ids, dtype=np.int64),
        )
        ptoks[key], ctoks[key], truncs[key], parses[key] = pt, comp, truncated, ok
        temps[key] = np.asarray(temperatures, dtype=float)

    truth, detail = pair_truth(
        cfg,
        base_logit,
        prompt_tokens.astype(float),
        completion_median,
        temperatures=None if is_train else cfg.test_temperatures,
    )
    return SimulatedSplit(
        split=split,
        queries=queries,
        view_questions=view_questions,
        view_prompts=view_prompts,
        blocks=blocks,
        prompt_tokens=ptoks,
        completion_tokens=ctoks,
        truncated=truncs,
        parse_success=parses,
        temperatures=temps,
        truth=truth,
        detail=detail,
        base_logit=base_logit,
    )


#: ``simulate(workers=None)`` and ``ensure_simulated`` draw the two splits in two processes from this
#: many observations.
PARALLEL_FROM_OBSERVATIONS = 1_000_000


def _split_streams(split: str, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    if split == "train":
        return _rng(seed, _STREAM_TRAIN_Q), _rng(seed, _STREAM_TRAIN_OBS)
    return _rng(seed, _STREAM_TEST_Q), _rng(seed, _STREAM_TEST_OBS)


def split_job(cfg: SimulatorConfig, split: str, skill: np.ndarray, seed: int) -> SimulatedSplit:
    """One split (``train`` or ``test``) from its own two streams (what a worker process runs)."""
    n = cfg.n_train if split == "train" else cfg.n_test
    return _simulate_split(cfg, split, n, skill, *_split_streams(split, seed))


def world_skill(cfg: SimulatorConfig, seed: int) -> np.ndarray:
    """``[M, K]`` logit skill per model and topic (the world stream of ``seed``)."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _skill_matrix(cfg, _rng(int(seed), _STREAM_WORLD))


def split_workers(cfg: SimulatorConfig, workers: int | None) -> int:
    """``workers``, or for ``None``: 2 from :data:`PARALLEL_FROM_OBSERVATIONS` observations on
    where two cores are available, else 1."""
    if workers is not None:
        return max(1, int(workers))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cores >= 2 and n_observations(cfg) >= PARALLEL_FROM_OBSERVATIONS else 1


def second_process() -> ProcessPoolExecutor:
    """One worker process for the test split. Spawned, not forked: the parent may hold
    threads (BLAS, Arrow, tqdm) that a fork would copy mid-lock."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def simulate(
    cfg: SimulatorConfig, seed: int, name: str = "synthetic", workers: int | None = None
) -> SimulatedData:
    """Draw a dataset from the generative model (in memory). Deterministic in ``(cfg, seed)``.

    Each split draws from its own streams, so the splits are independent computations: with
    ``workers=2`` the test split runs in a second process while this one draws the training
    split, and the result is the same, bit for bit (:func:`split_workers` picks for ``None``).
    """
    skill = world_skill(cfg, seed)
    seed = int(seed)
    if split_workers(cfg, workers) > 1:
        with second_process() as pool:
            test_job = pool.submit(split_job, cfg, "test", skill, seed)
            train = split_job(cfg, "train", skill, seed)
            try:
                test = test_job.result()
            except BrokenProcessPool:  # no usable second process (e.g. a __main__ read from stdin)
                test = split_job(cfg, "test", skill, seed)
    else:
        train = split_job(cfg, "train", skill, seed)
        test = split_job(cfg, "test", skill, seed)
    return SimulatedData(cfg=cfg, seed=seed, name=name, skill=skill, train=train, test=test)
