"""An independent, loop-based reference implementation of docs/spec.md §3-§6.

It works from a flat list of observation rows (dicts shaped like the DARS JSONL rows:
``query_id, model, prompt_variant_id, decode_id, score, cost, split`` and, on test rows,
``observation_type``) and deliberately shares no code with the harness: no
``ObservationBlock``, no masks, no vectorised reductions. Means and variances are computed
exactly with :class:`fractions.Fraction` (every float is an exact rational), so the only
rounding is the final ``float()`` / ``sqrt``.

Conventions (written down where docs/spec.md leaves a choice; the harness should agree):

* pool order: the ``models`` list given (docs/spec.md §3: metadata order, else sorted names);
* protocol: the ``n`` smallest ``prompt_variant_id`` / ``decode_id`` values present in the
  training rows of the dataset;
* ``input_only``: rows with ``decode_id == 0`` (docs/spec.md §4 literally) of every rewrite
  (``prompt_variant_id >= 0``); ``output_only``: the original view (``prompt_variant_id < 0``)
  if the training rows have one, else rewrite ``prompt_variant_id == 0``;
* ``dars_decode_risk``: a rewrite with one decode has within-rewrite variance 0 and *counts*
  in the mean over rewrites; a rewrite with no observation does not exist for the pair;
* ties: utilities within ``TIE_ATOL`` are a tie, then the lower mean cost (exact), then the
  earlier model in pool order;
* evaluation: a query whose chosen model has no observation in a view is left out of that
  view's mean (never scored as 0); ``random`` averages, per query, the models that have
  observations in the view;
* ``cheapest`` / ``largest``: from the mean *training* cost per model over all training
  observations (mean over queries of the pair means), independent of mode and protocol.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

TIE_ATOL = 1e-12
DETERMINISTIC_MODES = (
    "input_only",
    "output_only",
    "dars_no_risk",
    "dars_rewrite_risk",
    "dars_decode_risk",
    "dars",
)


# ----------------------------------------------------------------------------- small helpers
def F(x) -> Fraction:
    return Fraction(x)


def mean(xs):
    xs = list(xs)
    assert xs, "mean of nothing"
    total = Fraction(0)
    for x in xs:
        total += x
    return total / len(xs)


def sample_var(xs) -> Fraction:
    """ddof=1 variance; 0 for a single value (docs/spec.md §3)."""
    xs = list(xs)
    if len(xs) < 2:
        return Fraction(0)
    mu = mean(xs)
    total = Fraction(0)
    for x in xs:
        total += (x - mu) ** 2
    return total / (len(xs) - 1)


def sample_std(xs) -> float:
    return math.sqrt(sample_var(xs))


# ------------------------------------------------------------------------- cost normalisation
def cost_normaliser(rows, method: str = "minmax"):
    """docs/spec.md §3: over train and test rows together. Returns ``c -> Fraction``."""
    costs = [F(r["cost"]) for r in rows]
    lo, hi = min(costs), max(costs)
    if method == "minmax":
        span = hi - lo
        if span == 0:
            return lambda c: Fraction(0)
        return lambda c: (F(c) - lo) / span
    if method == "max":
        if hi == 0:
            return lambda c: F(c)
        return lambda c: F(c) / hi
    if method == "none":
        return lambda c: F(c)
    raise ValueError(method)


# --------------------------------------------------------------------------- the reference
class Reference:
    def __init__(self, rows, models, cost_norm: str = "minmax", params_b=None):
        self.rows = list(rows)
        self.models = list(models)
        self.norm = cost_normaliser(self.rows, cost_norm)
        self.params_b = params_b
        self.train_rows = [r for r in self.rows if r["split"] == "train"]
        self.test_rows = [r for r in self.rows if r["split"] == "test"]
        self.train_qids = sorted({r["query_id"] for r in self.train_rows})
        self.test_qids = sorted({r["query_id"] for r in self.test_rows})

    # ------------------------------------------------------------------ training observations
    def train_obs(self, n_rewrites=None, n_decodes=None):
        """(qid, model) -> list of (pv, dec, q, c~) sorted by (pv, dec), after the protocol."""
        views = sorted({r["prompt_variant_id"] for r in self.train_rows})
        decs = sorted({r["decode_id"] for r in self.train_rows})
        if n_rewrites is not None:
            if n_rewrites > len(views) or n_rewrites < 1:
                raise ValueError("protocol asks for too many rewrites")
            views = views[:n_rewrites]
        if n_decodes is not None:
            if n_decodes > len(decs) or n_decodes < 1:
                raise ValueError("protocol asks for too many decodes")
            decs = decs[:n_decodes]
        out = {}
        for r in self.train_rows:
            if r["prompt_variant_id"] in views and r["decode_id"] in decs:
                out.setdefault((r["query_id"], r["model"]), []).append(
                    (r["prompt_variant_id"], r["decode_id"], F(r["score"]), self.norm(r["cost"]))
                )
        for k in out:
            out[k].sort(key=lambda o: (o[0], o[1]))
        return out, views

    # -------------------------------------------------------------------------- supervision
    def targets(self, mode, n_rewrites=None, n_decodes=None):
        """(qid, model) -> (mu_q, mu_c, sigma_q) floats, for every pair with usable observations."""
        obs, views = self.train_obs(n_rewrites, n_decodes)
        has_original = any(v < 0 for v in views)
        has_rewrite = any(v >= 0 for v in views)
        out = {}
        for q in self.train_qids:
            for m in self.models:
                all_obs = obs.get((q, m), [])
                if mode == "input_only":
                    used = [o for o in all_obs if o[1] == 0 and (o[0] >= 0 or not has_rewrite)]
                elif mode == "output_only":
                    target_view = min(v for v in views if v < 0) if has_original else 0
                    used = [o for o in all_obs if o[0] == target_view]
                else:
                    used = all_obs
                if not used:
                    continue
                mu_q = mean(o[2] for o in used)
                mu_c = mean(o[3] for o in used)
                if mode in ("dars", "input_only", "output_only"):
                    sigma = sample_std(o[2] for o in used)
                elif mode == "dars_no_risk":
                    sigma = 0.0
                else:
                    groups = {}
                    for o in used:
                        groups.setdefault(o[0], []).append(o[2])
                    if mode == "dars_rewrite_risk":
                        sigma = sample_std(mean(g) for g in groups.values())
                    elif mode == "dars_decode_risk":
                        sigma = math.sqrt(mean(sample_var(g) for g in groups.values()))
                    else:
                        raise ValueError(mode)
                out[(q, m)] = (float(mu_q), float(mu_c), sigma, mu_q, mu_c)
        return out

    def single_shot_draw(self, seed, d, n_rewrites=None, n_decodes=None, qids=None):
        """The documented draw rule: rng(seed + d).random((Q, M)) in (query, model) order; the
        floor(u * n)-th observation of the pair in (prompt_variant_id, decode_id) order."""
        obs, _ = self.train_obs(n_rewrites, n_decodes)
        qids = list(qids if qids is not None else self.train_qids)
        u = np.random.default_rng(seed + d).random((len(qids), len(self.models)))
        out = {}
        for i, q in enumerate(qids):
            for j, m in enumerate(self.models):
                lst = obs.get((q, m), [])
                if not lst:
                    continue
                o = lst[int(math.floor(u[i, j] * len(lst)))]
                out[(q, m)] = (float(o[2]), float(o[3]), 0.0, o[2], o[3])
        return out

    # ---------------------------------------------------------------------- utility, choice
    @staticmethod
    def uses_risk(mode):
        return mode not in ("single_shot", "dars_no_risk")

    def choose(self, values):
        """values: model -> (U float, mu_c Fraction); docs/spec.md §3 tie-breaking. None if empty."""
        cands = [m for m in self.models if m in values]
        if not cands:
            return None
        best_u = max(values[m][0] for m in cands)
        tied = [m for m in cands if values[m][0] >= best_u - TIE_ATOL]
        best_c = min(values[m][1] for m in tied)
        return [m for m in tied if values[m][1] == best_c][0]

    def labels(self, targets, mode, lam, beta, tau=1.0, qids=None):
        """Hard labels qid -> model and soft labels qid -> {model: p}."""
        b = beta if self.uses_risk(mode) else 0.0
        hard, soft = {}, {}
        for q in qids if qids is not None else self.train_qids:
            vals = {}
            for m in self.models:
                if (q, m) in targets:
                    mu_q, mu_c, sigma, _, mu_c_exact = targets[(q, m)]
                    vals[m] = (mu_q - lam * mu_c - b * sigma, mu_c_exact)
            hard[q] = self.choose(vals)
            if vals:
                top = max(v[0] for v in vals.values())
                e = {m: math.exp((vals[m][0] - top) / tau) for m in vals}
                z = sum(e.values())
                soft[q] = {m: e.get(m, 0.0) / z for m in self.models}
        return hard, soft

    # --------------------------------------------------------------------------- evaluation
    def view_obs(self, view):
        """'r' (prompt_variation) or 'd' (decoding_variation): (qid, model) -> [(q, c~)]."""
        kind = {"r": "prompt_variation", "d": "decoding_variation"}[view]
        out = {}
        for r in self.test_rows:
            if r["observation_type"] == kind:
                out.setdefault((r["query_id"], r["model"]), []).append(
                    (F(r["score"]), self.norm(r["cost"]))
                )
        return out

    def policy(self, view, choice, lam):
        """U/Q/C (floats) and shares of ``choice`` (qid -> model) on a view."""
        obs = self.view_obs(view)
        lam_f = F(lam)
        us, qs, cs = [], [], []
        for q in self.test_qids:
            lst = obs.get((q, choice[q]), [])
            if not lst:
                continue  # never scored as 0
            us.append(mean(s - lam_f * c for s, c in lst))  # per-observation utility
            qs.append(mean(s for s, _ in lst))
            cs.append(mean(c for _, c in lst))
        share = {m: sum(choice[q] == m for q in self.test_qids) / len(self.test_qids) for m in self.models}
        return {"U": float(mean(us)), "Q": float(mean(qs)), "C": float(mean(cs)), "share": share}

    def _pair_means(self, view, lam):
        obs = self.view_obs(view)
        lam_f = F(lam)
        out = {}
        for (q, m), lst in obs.items():
            out[(q, m)] = (
                mean(s - lam_f * c for s, c in lst),
                mean(s for s, _ in lst),
                mean(c for _, c in lst),
            )
        return out

    def oracle(self, view, lam):
        pm = self._pair_means(view, lam)
        choice = {}
        for q in self.test_qids:
            # exact rationals: a tie is a tie, with no tolerance needed
            choice[q] = self.choose_exact(
                {m: (pm[(q, m)][0], pm[(q, m)][2]) for m in self.models if (q, m) in pm}
            )
        return choice, self.policy(view, choice, lam)

    def choose_exact(self, values):
        cands = [m for m in self.models if m in values]
        best_u = max(values[m][0] for m in cands)
        tied = [m for m in cands if values[m][0] == best_u]
        best_c = min(values[m][1] for m in tied)
        return [m for m in tied if values[m][1] == best_c][0]

    def best_fixed(self, view, lam):
        pm = self._pair_means(view, lam)
        per_model = {}
        for m in self.models:
            us = [pm[(q, m)][0] for q in self.test_qids if (q, m) in pm]
            cs = [pm[(q, m)][2] for q in self.test_qids if (q, m) in pm]
            if us:
                per_model[m] = (mean(us), mean(cs))
        m_best = self.choose_exact(per_model)
        return m_best, self.policy(view, {q: m_best for q in self.test_qids}, lam)

    def random(self, view, lam):
        pm = self._pair_means(view, lam)
        out = {}
        for k, name in enumerate(("U", "Q", "C")):
            per_query = []
            for q in self.test_qids:
                vals = [pm[(q, m)][k] for m in self.models if (q, m) in pm]
                if vals:
                    per_query.append(mean(vals))
            out[name] = float(mean(per_query))
        return out

    def train_mean_cost(self):
        obs, _ = self.train_obs()
        per_model = {}
        for m in self.models:
            pair_means = [mean(o[3] for o in obs[(q, m)]) for q in self.train_qids if (q, m) in obs]
            per_model[m] = mean(pair_means)
        return per_model

    def cheapest(self):
        c = self.train_mean_cost()
        lo = min(c.values())
        return [m for m in self.models if c[m] == lo][0]

    def largest(self):
        if self.params_b is not None and all(p is not None for p in self.params_b.values()):
            hi = max(self.params_b.values())
            return [m for m in self.models if self.params_b[m] == hi][0]
        c = self.train_mean_cost()
        hi = max(c.values())
        return [m for m in self.models if c[m] == hi][0]


def gap_closed(router, best_fixed, oracle):
    if oracle == best_fixed:
        return float("nan")
    return (router - best_fixed) / (oracle - best_fixed)


# =============================================================================================
# Test-data helpers. ``make_rows`` generates DARS-shaped rows; ``rows_to_dataset`` builds the
# harness's input from them (it touches only the harness's container types, none of its logic).
def make_rows(
    seed: int,
    models=("zeta/m", "alpha/m", "mid/m"),
    n_train=6,
    n_test=5,
    n_rewrites=3,
    n_decodes=3,
    p_missing=0.3,
    discrete=True,
    train_original=False,
    equal_costs=False,
    p_pair=0.15,
):
    """Ragged DARS-like rows. ``discrete`` rounds scores to {0, .5, 1} and draws costs from a
    small set so that utilities and costs tie often. Each query keeps one fully observed
    "anchor" model so that every query has something to choose from in every view/protocol.
    Besides single cells (``p_missing``), a non-anchor model loses ALL of a pair's observations
    in the train split / in one test view with probability ``p_pair``. Row order is shuffled
    (the loader orders queries by first appearance)."""
    rng = np.random.default_rng(seed)
    base = {m: float(rng.choice([0.001, 0.002, 0.004])) for m in models}

    def score():
        return float(rng.choice([0.0, 0.5, 1.0])) if discrete else float(np.round(rng.random(), 6))

    def cost(m):
        if equal_costs:
            return 0.003
        if discrete:
            return base[m] * float(rng.choice([1.0, 2.0]))
        return float(np.round(base[m] * (0.5 + rng.random()), 9))

    rows = []
    views = ([-1] if train_original else []) + list(range(n_rewrites))
    for i in rng.permutation(n_train):
        q = f"tr-{i:02d}"
        anchor = models[int(rng.integers(len(models)))]
        for m in models:
            if m != anchor and rng.random() < p_pair:
                continue
            for v in views:
                for d in range(n_decodes):
                    if m != anchor and rng.random() < p_missing:
                        continue
                    rows.append(dict(split="train", query_id=q, model=m, prompt_variant_id=v,
                                     decode_id=d, score=score(), cost=cost(m)))
    for i in rng.permutation(n_test):
        q = f"te-{i:02d}"
        anchor = models[int(rng.integers(len(models)))]
        for m in models:
            drop_r = m != anchor and rng.random() < p_pair
            drop_d = m != anchor and rng.random() < p_pair
            for v in range(3):
                if drop_r or (m != anchor and rng.random() < p_missing):
                    continue
                rows.append(dict(split="test", query_id=q, model=m, prompt_variant_id=v, decode_id=0,
                                 observation_type="prompt_variation", score=score(), cost=cost(m)))
            for d in range(3):
                if drop_d or (m != anchor and rng.random() < p_missing):
                    continue
                rows.append(dict(split="test", query_id=q, model=m, prompt_variant_id=-1, decode_id=d,
                                 observation_type="decoding_variation", score=score(), cost=cost(m)))
    order = rng.permutation(len(rows))
    return [rows[k] for k in order]


def rows_to_dataset(rows, models, name="ref", params_b=None):
    """A raw-cost DarsDataset from rows: queries sorted by id, views/decodes sorted ids."""
    import pandas as pd

    from benchmark.data.dataset import DarsDataset, ObservationBlock

    def block(sub, qids):
        vids = sorted({r["prompt_variant_id"] for r in sub})
        dids = sorted({r["decode_id"] for r in sub})
        shape = (len(qids), len(models), len(vids), len(dids))
        score, cost = np.full(shape, np.nan), np.full(shape, np.nan)
        present = np.zeros(shape, bool)
        for r in sub:
            k = (qids.index(r["query_id"]), models.index(r["model"]),
                 vids.index(r["prompt_variant_id"]), dids.index(r["decode_id"]))
            assert not present[k], "duplicate observation"
            score[k], cost[k], present[k] = r["score"], r["cost"], True
        return ObservationBlock(score, cost, present, np.array(vids, np.int64), np.array(dids, np.int64))

    models = list(models)
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    tr_q = sorted({r["query_id"] for r in train})
    te_q = sorted({r["query_id"] for r in test})
    table = {"model": models}
    if params_b is not None:
        table["params_b"] = [float(params_b[m]) for m in models]
    return DarsDataset(
        name=name,
        models=tuple(models),
        train=block(train, tr_q),
        test_rewrite=block([r for r in test if r["observation_type"] == "prompt_variation"], te_q),
        test_decoding=block([r for r in test if r["observation_type"] == "decoding_variation"], te_q),
        train_queries=pd.DataFrame({"query_id": tr_q, "text": tr_q}),
        test_queries=pd.DataFrame({"query_id": te_q, "text": te_q}),
        model_table=pd.DataFrame(table),
    )
