"""The student stage: train every configured run once per seed from the teacher caches, evaluate,
and write the result table. Offline: no Ray, no teacher inference (the teacher row of the table
evaluates the teacher model once on the final split for its scores and speed).

The metrics are the task's (:mod:`pipeline.metrics`): accuracy, macro-F1, F1 and MCC for a label
set; Pearson, Spearman and MSE for a regression task. The best epoch is chosen by the task's
headline metric on the dev split.

Outputs under ``<output_dir>/student/``:

- ``<run>-seed<k>/metrics.json``: run, model, data, seed, params, per-epoch history (train loss,
  every dev metric), best epoch, every test metric, sentences/s, and a key: a re-run with the same
  key reuses the finished run instead of training it again;
- ``<run>-seed<k>/model.pt`` (BiLSTM state + vocabulary) or a ``save_pretrained`` folder (BERT);
- ``results.json`` / ``results.md``: mean ± std over seeds of every metric on the test split (on
  dev where the test labels are hidden, as GLUE's are), params, speed;
- ``curves.png``: the headline dev metric per epoch of every run.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time

import numpy as np
import torch

from .. import assets, layout, storage
from ..cache import CacheError, TeacherCache, open_cache
from ..cache.ensemble import MAIN, Ensemble, Member, combine
from ..metrics import METRIC_NAMES, REGRESSION_METRICS, task_scores
from ..runtime.digest import digest
from ..runtime.resources import Resources
from ..runtime.runner import Stage, Task, Work, make_task, run_stage
from ..tasks import TASKS
from .errors import StudentStageError
from .evaluate import EvalSet, predict_bilstm, predict_transformer, read_split, timed
from .reader import ShuffleReader
from .settings import RunConfig, StudentConfig
from .train import fit, fit_intermediate, linear_schedule, restore_best, seed_everything


def student_dir(cfg) -> str:
    return layout.student_dir(cfg.output_dir)


def cache_dir(cfg, name: str) -> str:
    """The teacher cache of the input corpus ``name`` (checked to be a corpus name)."""
    layout.input_parts(name)
    return layout.cache_dir(cfg.output_dir, name)


def _device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise StudentStageError("student.device is cuda but no GPU is visible")
        return torch.device("cuda")
    return torch.device("cpu")


def _key(*parts) -> str:
    return digest(list(parts), length=16)


def _cache_fingerprint(cache: TeacherCache) -> str:
    return _key(cache.manifest["cache_key"], [s["sha256"] for s in cache.manifest["shards"]])


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def teacher_model_path(teacher: dict) -> str:
    """A local folder of a cache's teacher (its manifest's ``teacher`` entry). For a teacher named
    by URI the manifest records the teacher stage's copy on the node that ran it: used where it
    exists here, else the URI is copied to this node."""
    path, source = teacher["path"], teacher.get("model") or ""
    if storage.is_remote(source) and not os.path.isdir(path):
        return assets.local_copy(source)
    return assets.local_copy(path)


def _save_pretrained(folder: str, *parts) -> None:
    """``save_pretrained`` of ``parts`` (model, tokenizer) into ``folder``, a local path or a URI:
    written to this node's scratch disk first (transformers writes local files only), then each
    file copied whole."""
    with tempfile.TemporaryDirectory(prefix=".save-", dir=storage.scratch_dir()) as local:
        for part in parts:
            part.save_pretrained(local)
        storage.upload_tree(local, folder)


class _Context:
    """What every run of one stage shares: config, device, dev / test splits, opened caches."""

    def __init__(self, cfg, sc: StudentConfig, stream):
        self.cfg, self.sc, self.stream = cfg, sc, stream
        self.device = _device(sc.device)
        if sc.threads:
            torch.set_num_threads(sc.threads)
        self.regression = cfg.regression
        self.labels = list(cfg.output_names or [])
        # the task's headline metric (MCC for CoLA, F1 for MRPC / QQP, Pearson for STS-B), else
        # accuracy (Pearson for a regression job under a classification preset)
        kind = [m for m in METRIC_NAMES if (m in REGRESSION_METRICS) == self.regression]
        self.metric = next((m for m in TASKS[cfg.task].metrics if m in kind), kind[0])
        if not self.regression and len(self.labels) < 2:
            raise StudentStageError("the student stage needs the job's labels (at least two) or score (regression)")
        self.target = "score" if self.regression else "label_id"
        self.dev = self._split(sc.dev_split)
        self.test = self._split(sc.test_split) if sc.test_split else None
        # the split of the final scores: test, or dev where the test labels are hidden (GLUE)
        self.final, self.final_split = (self.test, sc.test_split) if self.test is not None else (self.dev, sc.dev_split)
        self._caches: dict[str, TeacherCache] = {}
        self._ensembles: dict[str, Ensemble] = {}

    def _split(self, split: str) -> EvalSet:
        path = storage.join(self.cfg.output_dir, "examples", split)
        if not storage.exists(path):
            raise StudentStageError(f"{path}: the {split!r} split has not been ingested (run `pipeline ingest`)")
        return read_split(path, self.regression)

    def cache(self, name: str, layers=None, attentions=None) -> TeacherCache:
        if name not in self._caches:
            self._caches[name] = open_cache(cache_dir(self.cfg, name))  # validates every shard (CacheError)
        cache = self._caches[name]
        cache.validate(layers=layers, attentions=attentions, checksums=False)
        if cache.labels != self.labels:
            raise CacheError(cache.path, f"labels {cache.labels} differ from the job's {self.labels}")
        return cache

    def ensemble(self, name: str) -> Ensemble:
        """The cache of ``name`` with the ensemble members its ensemble.json lists (validated once)."""
        if name not in self._ensembles:
            self._ensembles[name] = Ensemble(cache_dir(self.cfg, name), main=self.cache(name))
        return self._ensembles[name]


def _teacher_targets(ctx: _Context, run: RunConfig, collate):
    """The run's collate and the cache columns it reads for the teacher: the main teacher's logits,
    or, with ``run.teachers``, the ensemble's logits combined once per run and looked up by row."""
    if run.loss == "hard":
        return collate, []
    if not run.teachers:
        return collate, ["logits"]
    stacked = ctx.ensemble(run.data).logits(run.teachers)
    target = torch.from_numpy(combine(stacked, run.combine, run.weights, run.temperature))

    def with_ensemble(table):
        rows = torch.from_numpy(table.column("row").to_numpy().astype(np.int64))  # (a writable copy)
        return {**collate(table), "logits": target[rows]}

    return with_ensemble, []


# --- BiLSTM --------------------------------------------------------------------------------
def _train_bilstm(ctx: _Context, run: RunConfig, seed: int, folder: str) -> dict:
    from ..word_vectors import default_glove_path, read_vectors
    from .bilstm import BiLstmClassifier, collate_words
    from .words import Vocab, glove_matrix

    bc = ctx.sc.bilstm
    cache = ctx.cache(run.data)
    seed_everything(seed)
    pair = ctx.dev.pair
    texts = ["text_a", "text_b"] if pair else ["text_a"]
    glove_path = assets.local_copy(bc.glove) if bc.glove else default_glove_path()
    glove_words, glove = read_vectors(glove_path, rows=10**9, allow_pickle=bc.glove_allow_pickle)
    corpus = (t for table in cache.iter_tables(columns=texts) for col in texts for t in table.column(col).to_pylist())
    vocab = Vocab.build(corpus, extra=glove_words[: bc.glove_rows])
    embeddings, found = glove_matrix(vocab, glove_words, glove, seed)
    siamese = bc.pair_head == "siamese"
    model = BiLstmClassifier(embeddings, bc.hidden, bc.mlp, len(ctx.labels), bc.dropout, pair, siamese).to(ctx.device)
    collate, teacher_columns = _teacher_targets(ctx, run, lambda t: collate_words(t, vocab, bc.max_words, pair))
    reader = ShuffleReader(
        cache,
        [*texts, ctx.target, *teacher_columns],
        bc.batch_size,
        buffer_rows=ctx.sc.shuffle_buffer,
        seed=seed,
        max_rows=run.max_rows,
        fraction=run.fraction,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=bc.lr)

    def forward(m, b):
        return m(b["ids_a"], b["len_a"], b.get("ids_b"), b.get("len_b"))

    def predict(data):
        return predict_bilstm(model, vocab, data, bc.max_words, ctx.device)

    history = fit(
        model,
        reader,
        collate,
        forward,
        loss=run.loss,
        epochs=run.epochs or bc.epochs,
        optimizer=optimizer,
        predict=predict,
        dev=ctx.dev,
        metric=ctx.metric,
        regression=ctx.regression,
        label=f"{run.name} seed {seed}",
        device=ctx.device,
        temperature=run.temperature,
        alpha=run.alpha,
        max_grad_norm=5.0,
        stream=ctx.stream,
    )
    restore_best(model, history)
    storage.makedirs(folder)
    buffer = io.BytesIO()  # torch.save writes local files only: serialised here, then written whole
    torch.save(
        {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "vocab": vocab.itos,
            "pair": pair,
            "settings": bc.model_dump(),
            "labels": ctx.labels,
        },
        buffer,
    )
    storage.write_bytes(storage.join(folder, "model.pt"), buffer.getvalue())
    params = _params(model)
    return {
        "history": history.epochs,
        "best_epoch": history.best_epoch,
        "params": params,
        "params_without_embeddings": params - model.embed.weight.numel(),
        "vocab": len(vocab),
        "glove_words_found": found,
        "train_rows": reader.num_rows,
        "predict": predict,
    }


# --- small BERT ------------------------------------------------------------------------------
def _train_bert(ctx: _Context, run: RunConfig, seed: int, folder: str) -> dict:
    from transformers import AutoTokenizer

    from .bert import HiddenProjection, build_student, collate_tokens, layer_map
    from .minilm import minilm_loss, project, student_qkv

    bc = ctx.sc.bert
    cache = ctx.cache(run.data)
    teacher_path = teacher_model_path(cache.manifest["teacher"])
    teacher_layers = int(cache.manifest["teacher"]["num_layers"])
    g = layer_map(teacher_layers, bc.layers, bc.layer_map)
    seed_everything(seed)
    inter = None
    attention = False
    mini = bc.minilm
    if run.intermediate and bc.intermediate_epochs:
        attention = bc.attention_loss and mini is None
        if mini is not None:
            inter = ctx.cache(run.intermediate)
            mini_layer = mini.teacher_layer or max(inter.minilm_layers, default=0)
            mini_weights = {k: v.to(ctx.device) for k, v in inter.minilm_weights(mini_layer).items()}
            inter.validate(layers=[mini_layer - 1], checksums=False)
        else:
            inter = ctx.cache(run.intermediate, layers=g, attentions=g[1:] if attention else None)
        if inter.teacher_hash != cache.teacher_hash:
            raise CacheError(
                inter.path,
                f"made by teacher {inter.teacher_hash[:12]}, the run's data cache by {cache.teacher_hash[:12]}",
            )
    model = build_student(
        teacher_path,
        bc.layers,
        bc.init,
        g,
        hidden_size=bc.hidden_size,
        intermediate_size=bc.intermediate_size,
        num_attention_heads=bc.num_attention_heads,
        seed=seed,
        attentions=attention,
    ).to(ctx.device)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    label = f"{run.name} seed {seed}"
    stages = []
    if inter is not None:
        proj = HiddenProjection(model.config.hidden_size, inter.hidden_size).to(ctx.device) if mini is None else None
        states = [mini_layer - 1] if mini is not None else g
        columns = [
            "input_ids",
            "num_tokens",
            *(["token_type_ids"] if "token_type_ids" in inter.column_names else []),
            *[f"hidden_{x}" for x in states],
            *([f"attention_{x}" for x in g[1:]] if attention else []),
        ]
        loss_fn = None
        if mini is not None:
            config = dict(
                version=mini.version,
                teacher_heads=inter.num_heads,
                student_heads=model.config.num_attention_heads,
                relation_heads=mini.relation_heads,
            )

            def loss_fn(out, batch):
                teacher = project(batch[f"hidden_{mini_layer - 1}"], mini_weights)
                return minilm_loss(teacher, student_qkv(model, out.hidden_states), batch["attention_mask"], **config)

        reader = ShuffleReader(
            inter,
            columns,
            bc.batch_size,
            buffer_rows=min(ctx.sc.shuffle_buffer, 4096),
            seed=seed,
            max_rows=run.max_rows,
        )
        stages = fit_intermediate(
            model,
            proj,
            reader,
            lambda t: collate_tokens(t, inter.hidden_size, inter.num_heads),
            g=g,
            attention=attention,
            hidden_loss=bc.hidden_loss,
            hidden_layers=bc.hidden_layers,
            epochs=bc.intermediate_epochs,
            lr=bc.intermediate_lr,
            warmup_ratio=bc.warmup_ratio,
            device=ctx.device,
            label=label,
            stream=ctx.stream,
            loss_fn=loss_fn,
        )
        if attention:  # back to the fast attention kernels for the prediction step
            model.set_attn_implementation("sdpa")
    collate, teacher_columns = _teacher_targets(ctx, run, collate_tokens)
    columns = [
        "input_ids",
        "num_tokens",
        ctx.target,
        *(["token_type_ids"] if "token_type_ids" in cache.column_names else []),
        *teacher_columns,
    ]
    reader = ShuffleReader(
        cache,
        columns,
        bc.batch_size,
        buffer_rows=ctx.sc.shuffle_buffer,
        seed=seed,
        max_rows=run.max_rows,
        fraction=run.fraction,
    )
    epochs = run.epochs or bc.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=bc.lr, weight_decay=0.01)
    scheduler = linear_schedule(optimizer, epochs * reader.steps_per_epoch(), bc.warmup_ratio)

    def forward(m, b):
        inputs = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in b}
        return m(**inputs).logits

    def predict(data):
        return predict_transformer(model, tokenizer, data, ctx.device, int(cache.manifest["max_length"]))

    history = fit(
        model,
        reader,
        collate,
        forward,
        loss=run.loss,
        epochs=epochs,
        optimizer=optimizer,
        scheduler=scheduler,
        predict=predict,
        dev=ctx.dev,
        metric=ctx.metric,
        regression=ctx.regression,
        label=label,
        device=ctx.device,
        temperature=run.temperature,
        alpha=run.alpha,
        stream=ctx.stream,
    )
    restore_best(model, history)
    _save_pretrained(folder, model, tokenizer)
    return {
        "history": stages + history.epochs,
        "best_epoch": history.best_epoch,
        "params": _params(model),
        "params_without_embeddings": _params(model) - _params(model.get_input_embeddings()),
        "layer_map": g,
        "init": bc.init,
        "train_rows": reader.num_rows,
        "predict": predict,
    }


# --- one run, the table ------------------------------------------------------------------------
def _run_key(ctx: _Context, run: RunConfig, seed: int) -> str:
    data_fp = _cache_fingerprint(ctx.cache(run.data))
    if run.teachers:
        members = ctx.ensemble(run.data).members
        data_fp = _key(data_fp, [_cache_fingerprint(members[n].cache) for n in run.teachers])
    inter_fp = _cache_fingerprint(ctx.cache(run.intermediate)) if run.intermediate else None
    settings = ctx.sc.bilstm if run.model == "bilstm" else ctx.sc.bert
    # "scores": runs finished before the final scores covered dev-only tasks are trained again
    parts = (run.model_dump(), seed, data_fp, inter_fp, settings.model_dump(), ctx.sc.dev_split, ctx.sc.test_split)
    return _key(*parts, "scores")


def _metrics_path(ctx: _Context, run: RunConfig, seed: int) -> str:
    return storage.join(student_dir(ctx.cfg), f"{run.name}-seed{seed}", "metrics.json")


def _finished_run(ctx: _Context, run: RunConfig, seed: int) -> dict | None:
    """The metrics of a run finished earlier with the same settings, caches and seed."""
    mpath = _metrics_path(ctx, run, seed)
    if storage.exists(mpath):
        old = storage.read_json(mpath)
        if isinstance(old, dict) and old.get("key") == _run_key(ctx, run, seed):
            print(f"  {run.name} seed {seed}: finished earlier (key {old['key']}), reused", file=ctx.stream)
            return old
    return None


def _run_once(ctx: _Context, run: RunConfig, seed: int) -> dict:
    key = _run_key(ctx, run, seed)
    mpath = _metrics_path(ctx, run, seed)
    folder = mpath.rsplit("/", 1)[0]
    started = time.perf_counter()
    trainer = _train_bilstm if run.model == "bilstm" else _train_bert
    result = trainer(ctx, run, seed, folder)
    predict = result.pop("predict")
    logits, speed = timed(predict, ctx.final)
    scores = task_scores(logits, ctx.final.labels, ctx.regression)
    metrics = {
        "run": run.name,
        "model": run.model,
        "data": run.data,
        "loss": run.loss,
        "seed": seed,
        **result,
        "metric": ctx.metric,
        "eval_split": ctx.final_split,
        "scores": scores,  # on eval_split with the best epoch's weights
        "test": scores if ctx.test is not None else {},
        "sentences_per_s": round(speed, 1) if speed else None,
        "seconds": round(time.perf_counter() - started, 3),
        "key": key,
    }
    storage.write_json(mpath, metrics)
    dev_best = max((e[f"dev_{ctx.metric}"] for e in metrics["history"] if f"dev_{ctx.metric}" in e), default=np.nan)
    print(
        f"  {run.name} seed {seed}: dev {ctx.metric} {dev_best:.4f}, "
        f"{ctx.final_split} {scores.get(ctx.metric, float('nan')):.4f} ({metrics['seconds']:.0f} s)",
        file=ctx.stream,
    )
    return metrics


class _RunTrainer:
    """The runner's worker for student runs: one task per (run, seed), in this process."""

    def __init__(self, ctx: _Context, runs: dict[str, RunConfig]):
        self.ctx, self.runs = ctx, runs

    def __call__(self, tasks: list[Task]):
        for task in tasks:
            yield {**_run_once(self.ctx, self.runs[task.spec["run"]], task.spec["seed"]), "rows_in": 1}


def _teacher_rows(ctx: _Context) -> list[dict]:
    """The teacher's own row (its model run on the final split) and, when runs learn from an
    ensemble, a row per further teacher and per combination the runs use."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    first = ctx.sc.runs[0].data
    ensembles = [r for r in ctx.sc.runs if r.teachers]
    caches = ctx.ensemble(ensembles[0].data).members if ensembles else {MAIN: Member(MAIN, ctx.cache(first))}
    wanted = list(dict.fromkeys([MAIN, *(n for r in ensembles for n in r.teachers or [])]))
    outputs, params, rows = {}, {}, []
    for name in wanted:
        manifest = caches[name].cache.manifest
        path = teacher_model_path(manifest["teacher"])
        model = AutoModelForSequenceClassification.from_pretrained(path).to(ctx.device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        length = int(manifest["max_length"])
        outputs[name], speed = timed(
            lambda d, m=model, t=tokenizer, n=length: predict_transformer(m, t, d, ctx.device, n), ctx.final
        )
        label = "teacher" if name == MAIN else f"teacher {name}"
        params[name] = _params(model)
        kind = manifest["teacher"].get("model_type", "teacher")
        rows.append(_score_row(ctx, label, kind, outputs[name], params[name], speed))
    for names, how, weights in dict.fromkeys(
        (tuple(r.teachers or []), r.combine, tuple(r.weights or [])) for r in ensembles
    ):
        combined = combine(np.stack([outputs[n] for n in names]), how, list(weights) or None)
        label = (
            f"teachers {'+'.join(names)} ({how}{', weights ' + '/'.join(f'{w:g}' for w in weights) if weights else ''})"
        )
        rows.append(_score_row(ctx, label, "ensemble", combined, sum(params[n] for n in names), None))
    return rows


def _score_row(ctx: _Context, name: str, model: str, outputs: np.ndarray, params: int, speed: float | None) -> dict:
    scores = task_scores(outputs, ctx.final.labels, ctx.regression)
    return {
        "name": name,
        "model": model,
        "data": "fine-tuned",
        "seeds": [ctx.cfg.seed],
        "eval_split": ctx.final_split,
        **{f"{k}_mean": v for k, v in scores.items()},
        **{f"{k}_std": None for k in scores},
        "metric": ctx.metric,
        "metric_mean": scores[ctx.metric],
        "metric_std": None,
        "params": params,
        "sentences_per_s": round(speed, 1) if speed else 0.0,
    }


def aggregate(run: RunConfig, results: list[dict], metric: str = "accuracy") -> dict:
    """One row of the table: mean and standard deviation over seeds of every final metric
    (``accuracy_mean``, ``macro_f1_std``, ``pearson_mean``, ...) on the run's eval split."""
    finals = [r.get("scores", r["test"]) for r in results]
    names = list(dict.fromkeys(k for f in finals for k in f)) or [metric]
    stats: dict = {}
    for name in names:
        values = np.array([f.get(name, np.nan) for f in finals], dtype=float)
        stats[f"{name}_mean"] = float(values.mean())
        stats[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return {
        "metric": metric,
        "metric_mean": stats.get(f"{metric}_mean", float("nan")),
        "metric_std": stats.get(f"{metric}_std"),
        "name": run.name,
        "model": run.model,
        "data": run.data,
        "loss": run.loss,
        "seeds": [r["seed"] for r in results],
        "eval_split": results[0].get("eval_split", "test"),
        **stats,
        "params": int(results[0]["params"]),
        "params_without_embeddings": int(results[0].get("params_without_embeddings", results[0]["params"])),
        "sentences_per_s": float(np.mean([r["sentences_per_s"] or 0 for r in results])),
        "train_rows": int(results[0].get("train_rows", 0)),
    }


def table_metrics(metric: str) -> list[str]:
    """The table's metric columns: the headline first, then accuracy / macro-F1 (classification)
    or Spearman / MSE (regression)."""
    rest = ["spearman", "mse"] if metric in REGRESSION_METRICS else ["accuracy", "macro_f1"]
    return list(dict.fromkeys([metric, *[m for m in rest if m != metric]]))


def _cell(r: dict, name: str, first: bool) -> str:
    mean, std = r.get(f"{name}_mean"), r.get(f"{name}_std")
    if mean is None:
        return "-"
    scale, digits = (1.0, 4) if name == "mse" else (100.0, 2)
    text = f"{scale * mean:.{digits}f}"
    if first:
        seeds = len(r["seeds"])
        spread = f" ± {scale * std:.{digits}f}" if std is not None else ""
        text += f"{spread} ({seeds} seed{'s' if seeds > 1 else ''})"
    return text


def markdown_table(rows: list[dict]) -> str:
    """The result table: the task's headline metric (mean ± std over seeds) and two more, on the
    test split, or on dev where the task's test labels are hidden."""
    metric = next((r["metric"] for r in rows if r.get("metric")), "accuracy")
    split = next((r["eval_split"] for r in rows if r.get("eval_split")), "test")
    names = table_metrics(metric)
    heads = [f"{split} {METRIC_NAMES[names[0]]} (mean ± std)", *(METRIC_NAMES[n] for n in names[1:])]
    lines = [
        f"| model | trained on | loss | {' | '.join(heads)} | params | sentences/s |",
        "| --- | --- | --- |" + " --- |" * len(names) + " --- | --- |",
    ]
    for r in rows:
        cells = " | ".join(_cell(r, n, i == 0) for i, n in enumerate(names))
        lines.append(
            f"| {r['name']} | {r['data']} | {r.get('loss', '-')} | {cells} | "
            f"{r['params'] / 1e6:.2f} M | {r['sentences_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_curves(per_run: dict[str, list[dict]], path: str, metric: str = "accuracy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"dev_{metric}"
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, results in per_run.items():
        curves = [[e[key] for e in r["history"] if key in e] for r in results]
        n = min(len(c) for c in curves)
        if n:
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(range(1, n + 1), 100 * mean, marker="o", label=name)
    ax.set_xlabel("epoch (prediction-layer step)")
    ax.set_ylabel(f"dev {METRIC_NAMES[metric]}, mean over seeds (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    storage.write_bytes(path, png.getvalue())


def run_student(
    cfg,
    student: StudentConfig | None = None,
    *,
    runs: list[str] | None = None,
    seeds: list[int] | None = None,
    stream=None,
) -> dict:
    """Train, evaluate and tabulate the job's student runs (``runs`` / ``seeds``: only these; several
    processes or machines can split a job's runs this way, and a last run without them tabulates all)."""
    sc = student if student is not None else cfg.student
    if sc is None:
        raise StudentStageError("the job has no student section")
    stream = stream or sys.stderr
    chosen = [r for r in sc.runs if runs is None or r.name in runs]
    unknown = sorted(set(runs or []) - {r.name for r in sc.runs})
    if unknown:
        raise StudentStageError(f"unknown run(s) {unknown}; the job has {[r.name for r in sc.runs]}")
    unknown_seeds = sorted(set(seeds or []) - set(sc.seeds))
    if unknown_seeds:
        raise StudentStageError(f"unknown seed(s) {unknown_seeds}; the job has {sc.seeds}")
    if seeds:
        sc = sc.model_copy(update={"seeds": [s for s in sc.seeds if s in seeds]})
    ctx = _Context(cfg, sc, stream)
    for run in chosen:  # every cache is validated before the first step of training
        ctx.cache(run.data)
        if run.intermediate:
            ctx.cache(run.intermediate)
        if run.teachers:
            missing = sorted(set(run.teachers) - set(ctx.ensemble(run.data).names))
            if missing:
                raise CacheError(
                    cache_dir(cfg, run.data),
                    f"run {run.name!r} names teachers {missing}; the cache's ensemble has "
                    f"{ctx.ensemble(run.data).names} (teacher.ensemble, then `pipeline teacher`)",
                )
    by_name = {run.name: run for run in chosen}
    pairs = [(run.name, seed) for run in chosen for seed in sc.seeds]
    tasks = [make_task(i, {"run": name, "seed": seed}, 1) for i, (name, seed) in enumerate(pairs)]
    out = student_dir(cfg)
    per_run: dict[str, list[dict]] = {}
    rows: list[dict] = []

    def reuse(task: Task) -> dict | None:
        done = _finished_run(ctx, by_name[task.spec["run"]], task.spec["seed"])
        return None if done is None else {**done, "rows_in": 1}

    def commit(summary: dict, results: list[dict]) -> None:
        for (name, _), result in zip(pairs, results):
            per_run.setdefault(name, []).append(result)
        if sc.teacher_row:
            rows.extend(_teacher_rows(ctx))
        rows.extend(aggregate(run, per_run[run.name], ctx.metric) for run in chosen)
        storage.write_json(
            storage.join(out, "results.json"),
            {"rows": rows, "seeds": sc.seeds, "device": str(ctx.device), "threads": torch.get_num_threads()},
        )
        table = markdown_table(rows)
        storage.write_bytes(storage.join(out, "results.md"), table.encode())
        plot_curves(per_run, storage.join(out, "curves.png"), ctx.metric)
        print(table, file=sys.stdout)

    stage = Stage(
        "student",
        out,
        _key([t.spec for t in tasks]),
        lambda: tasks,
        lambda todo: Work(
            _RunTrainer, {"ctx": ctx, "runs": by_name}, Resources(threads=torch.get_num_threads(), actors=True)
        ),
        lines=lambda s: [
            ("runs", len(chosen)),
            ("seeds", str(sc.seeds)),
            ("device", str(ctx.device)),
            ("results", storage.join(out, "results.md")),
        ],
        reuse=reuse,
        commit=commit,
        task_markers=False,
        unit="runs",
    )
    run_stage(stage, executor="local")
    return {"rows": rows, "runs": per_run}
