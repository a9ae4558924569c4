"""Training one student run: a BiLSTM or a small BERT from the teacher caches, evaluated on the
final split and written as ``model.pt`` / a ``save_pretrained`` folder and ``metrics.json``."""

from __future__ import annotations

import io
import tempfile
import time

import numpy as np
import torch

from .. import assets, storage
from ..cache import CacheError
from ..metrics import task_scores
from ..runtime.runner import Task
from .evaluate import predict_bilstm, predict_transformer, timed
from .reader import ShuffleReader
from .run_context import _cache_fingerprint, _Context, _key, _params, _teacher_targets, student_dir, teacher_model_path
from .settings import RunConfig
from .train import fit, fit_intermediate, linear_schedule, restore_best, seed_everything


def _save_pretrained(folder: str, *parts) -> None:
    """``save_pretrained`` of ``parts`` (model, tokenizer) into ``folder``, a local path or a URI:
    written to this node's scratch disk first (transformers writes local files only), then each
    file copied whole."""
    with tempfile.TemporaryDirectory(prefix=".save-", dir=storage.scratch_dir()) as local:
        for part in parts:
            part.save_pretrained(local)
        storage.upload_tree(local, folder)


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
    language, mask = ctx.cfg.language, ctx.cfg.augment.tang.mask_token
    vocab = Vocab.build(corpus, extra=glove_words[: bc.glove_rows], language=language, mask_token=mask)
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
            "words": {"language": vocab.language, "mask_token": vocab.mask_token},  # how texts were split
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


# --- one run -----------------------------------------------------------------------------------
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
