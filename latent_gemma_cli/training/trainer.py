"""The training loop: stages, data-parallel steps with accelerate, checkpoints, resume, metrics.

Batching: each process takes micro-batches of `batch_size` rows; rows with the same thought
count run in one left-padded forward (forward.py). An optimizer step sees
`batch_size * grad_accum * processes` rows (fewer at the end of an epoch, whose row order is
padded by wrap-around to a multiple of `batch_size * processes`). The loss is the mean over
every target token of the step on all processes (token counts are all-reduced, and DDP averages
gradients, so the loss is scaled by the process count): one process with the same global batch
computes the same update.

Data order: the rows of epoch e of stage s are shuffled by a generator seeded from
(seed, stage, e), so the data position is just (stage, step within the stage) and a resumed run
sees the same rows as an uninterrupted one. The optimizer and the LR schedule (linear warm-up,
then constant) are reset when the stage changes. Precision: fp32 weights; `bf16` autocast on
GPUs that support it (`auto`); fp16 is not offered (Gemma trains unstably in fp16).

Launch: `lgemma train ...` on one device, or
`accelerate launch --multi_gpu --num_processes 4 -m latent_gemma_cli train ...` for data parallelism
(CPU processes: `python -m torch.distributed.run --nproc_per_node 2 -m latent_gemma_cli train ...`, gloo).
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .curriculum import Curriculum, mixed_stage
from .prepare import LoraSettings

LOCK_NAME = ".lgemma-train.lock"


Event = Callable[[dict], None]


# Micro-batches per length-bucketing window (`--bucket-by-length`).
BUCKET_WINDOW = 16


@dataclass
class TrainConfig:
    """Everything one `lgemma train` run needs; see the command's help for each flag."""

    model: str
    data: str
    out: str
    valid: str | None = None
    data_format: str = "auto"
    direction: str | None = None
    limit: int | None = None
    # Columns, --filter-lang and hub access (datasets.DataOptions); None reads as before.
    data_options: Any = None
    curriculum: Curriculum = field(default_factory=Curriculum)
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 1024
    max_grad_norm: float = 1.0
    seed: int = 0
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False
    precision: str = "auto"
    device: str = "auto"
    on_bad_record: str = "fail"
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    resume: str | None = None
    valid_limit: int = 100
    valid_max_new_tokens: int = 64
    save_dtype: str = "float32"
    # Stop after this many optimizer steps in total (testing and smoke runs); a checkpoint is saved.
    max_steps: int | None = None
    # How a thought's final hidden state becomes the next input (engine.LatentRunner.feedback).
    feedback: str = "identity"
    # Group rows of similar prompt length into the same micro-batches (less padding, other batches).
    bucket_by_length: bool = False
    # How translation rows are prompted for a model without a chat template (latent_spec).
    translation_prompt: str = "few_shot"

    def fingerprint(self) -> dict:
        """Settings that must match on resume."""
        keep = (
            "model",
            "curriculum",
            "lr",
            "weight_decay",
            "warmup_steps",
            "batch_size",
            "grad_accum",
            "max_length",
            "seed",
            "lora",
            "data_format",
            "direction",
            "limit",
            "feedback",
        )
        data = asdict(self)
        out = {k: data[k] for k in keep}
        out["curriculum"] = self.curriculum.to_dict()
        if self.bucket_by_length:  # absent when off, so checkpoints from before the flag still match
            out["bucket_by_length"] = True
        if self.translation_prompt != "few_shot":  # likewise
            out["translation_prompt"] = self.translation_prompt
        return out


@dataclass
class TrainResult:
    out: Path
    steps: int
    final_loss: float | None
    stages: list[dict]
    completed: bool


class Trainer:
    """One training run. Call `run()`; `events` receives progress dictionaries (rank 0 only)."""

    def __init__(
        self, config: TrainConfig, events: Event | None = None, dataset: Any = None, valid_dataset: Any = None
    ):
        self.config = config
        self.events = events or (lambda e: None)
        self._dataset = dataset
        self._valid_dataset = valid_dataset

    # setup ------------------------------------------------------------------------------------
    def _emit(self, **event) -> None:
        if self.accelerator.is_main_process:
            self.events(event)

    def _setup(self) -> None:
        import torch
        from accelerate import Accelerator

        from ..loading import load_model, resolve_model_path
        from . import data as data_mod
        from .forward import LatentLossModule, enable_mlp_checkpointing
        from .output import check_out_dir
        from .prepare import apply_lora, hf_model, setup_markers

        cfg = self.config
        cfg.curriculum.validate()
        check_out_dir(cfg.out, resolve_model_path(cfg.model))
        precision = cfg.precision
        if precision == "auto":
            precision = (
                "bf16" if torch.cuda.is_available() and cfg.device != "cpu" and torch.cuda.is_bf16_supported() else "no"
            )
        self.accelerator = Accelerator(cpu=cfg.device == "cpu", mixed_precision=precision)
        self.precision = precision
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        loaded = load_model(cfg.model, device="cpu", dtype="float32")
        self.base_path = loaded.path
        model, self.tokenizer = loaded.model, loaded.tokenizer
        # The pause-token control needs a third marker, <pause>, whose embedding trains.
        count = 3 if cfg.feedback == "pause" else 2
        self.markers, self.marker_ids, self.resized = setup_markers(model, self.tokenizer, count)
        if cfg.lora is not None:
            model = apply_lora(model, self.marker_ids, cfg.lora)
        self.model = model
        self.hf = hf_model(model)
        if cfg.gradient_checkpointing:
            enable_mlp_checkpointing(self.hf)
        self.model.train()
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else int(self.tokenizer.eos_token_id)
        )
        dataset = (
            self._dataset
            if self._dataset is not None
            else data_mod.read(cfg.data, cfg.data_format, cfg.direction, cfg.limit, cfg.data_options, "train")
        )
        if getattr(dataset, "filtered", 0):
            self._emit(
                event="filtered", rows=dataset.filtered, message=f"--filter-lang dropped {dataset.filtered} rows"
            )
        report = lambda p: self._emit(event="problem", message=str(p))  # noqa: E731
        self.data = data_mod.prepare(
            dataset, self.tokenizer, cfg.curriculum, cfg.max_length, cfg.on_bad_record, report, cfg.translation_prompt
        )
        self.valid = None
        if cfg.valid or self._valid_dataset is not None:
            vds = (
                self._valid_dataset
                if self._valid_dataset is not None
                # Only the first --valid-limit rows are used: read no more (a hub split is streamed).
                else data_mod.read(
                    cfg.valid, cfg.data_format, cfg.direction, cfg.valid_limit, cfg.data_options, "validation"
                )
            )
            self.valid = vds.examples[: cfg.valid_limit]
        self.loss_module = self.accelerator.prepare(
            LatentLossModule(self.model, self.hf, self.pad_id, cfg.feedback, self.pause_id)
        )
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index

    @property
    def pause_id(self) -> int | None:
        return self.marker_ids[2] if len(self.marker_ids) > 2 else None

    def _new_optimizer(self):
        import torch

        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        warm = self.config.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (warm + 1)) if warm else 1.0)
        return opt, sched

    # data positions ---------------------------------------------------------------------------
    def _epoch_order(self, stage: int, epoch: int) -> list[int]:
        order = list(range(len(self.data)))
        random.Random(f"{self.config.seed}:{stage}:{epoch}").shuffle(order)
        unit = self.config.batch_size * self.world
        if self.config.bucket_by_length:
            order = self._bucketed(order, unit, f"{self.config.seed}:{stage}:{epoch}")
        pad = (-len(order)) % unit
        return order + (order * (pad // len(order) + 1))[:pad]

    def _bucketed(self, order: list[int], unit: int, seed: str) -> list[int]:
        """Length bucketing: within each window of BUCKET_WINDOW micro-batches of the shuffled
        order, rows are sorted by prompt length and cut into micro-batches, whose order is then
        shuffled; a pure function of the seed, so resuming stays exact."""
        window = unit * BUCKET_WINDOW
        out: list[int] = []
        for w, start in enumerate(range(0, len(order), window)):
            rows = sorted(order[start : start + window], key=lambda i: len(self.data.prompts[i]))
            groups = [rows[k : k + unit] for k in range(0, len(rows), unit)]
            random.Random(f"{seed}:buckets:{w}").shuffle(groups)
            out += [i for g in groups for i in g]
        return out

    @property
    def steps_per_epoch(self) -> int:
        padded = math.ceil(len(self.data) / (self.config.batch_size * self.world)) * self.config.batch_size * self.world
        return math.ceil(padded / (self.config.batch_size * self.config.grad_accum * self.world))

    def stage_steps(self, stage: int) -> int:
        cur = self.config.curriculum
        n = cur.stage_length(stage)
        return n if cur.steps_per_stage else n * self.steps_per_epoch

    def _micro_batches(self, stage: int, stage_step: int, global_step: int) -> list[list[Any]]:
        """This process's micro-batches (as TrainSequences) for one optimizer step."""
        cfg = self.config
        epoch, j = divmod(stage_step, self.steps_per_epoch)
        order = self._epoch_order(stage, epoch)
        size = cfg.batch_size * cfg.grad_accum * self.world
        chunk = order[j * size : (j + 1) * size]
        unit = cfg.batch_size * self.world
        micros = []
        for m in range(len(chunk) // unit):
            rows = chunk[m * unit + self.rank * cfg.batch_size : m * unit + (self.rank + 1) * cfg.batch_size]
            micros.append(
                [
                    self.data.sequence(
                        i,
                        mixed_stage(
                            stage,
                            cfg.seed,
                            global_step,
                            m * unit + self.rank * cfg.batch_size + k,
                            cfg.curriculum,
                            len(self.data.examples[i].steps or []),
                        ),
                        cfg.curriculum,
                        self.tokenizer,
                        self.marker_ids,
                        cfg.max_length,
                    )
                    for k, i in enumerate(rows)
                ]
            )
        return micros

    # one step ---------------------------------------------------------------------------------
    def _step(self, micros, optimizer, scheduler) -> tuple[float, int, int]:
        import torch

        acc = self.accelerator
        local_tokens = sum(s.target_tokens for mb in micros for s in mb)
        total_tokens = int(acc.reduce(torch.tensor(local_tokens, device=acc.device), "sum"))
        loss_sum = torch.zeros((), device=acc.device)
        for m, mb in enumerate(micros):
            sync = m == len(micros) - 1
            ctx = acc.no_sync(self.loss_module) if not sync and self.world > 1 else nullcontext()
            with ctx:
                with acc.autocast():
                    total, _ = self.loss_module(mb)
                # DDP averages gradients over processes; scale so the result is the global token mean.
                acc.backward(total * self.world / max(total_tokens, 1))
            loss_sum += total.detach().float()
        if self.config.max_grad_norm > 0:
            acc.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        global_loss = float(acc.reduce(loss_sum, "sum")) / max(total_tokens, 1)
        seq_tokens = sum(s.length for mb in micros for s in mb) * self.world
        return global_loss, total_tokens, seq_tokens

    # checkpoints ------------------------------------------------------------------------------
    def _checkpoint(self, global_step, stage, stage_step, optimizer, scheduler, rng, done=False) -> Path:
        from . import checkpoint
        from .prepare import trainable_state

        directory = checkpoint.checkpoints_dir(self.out) / f"step-{global_step:08d}"
        state = {
            "global_step": global_step,
            "stage": stage,
            "stage_step": stage_step,
            "done": done,
            "config": self.config.fingerprint(),
            "data_sha256": self.data.sha256,
            "markers": list(self.markers),
            "world_size": self.world,
        }
        checkpoint.save(
            directory,
            self.rank,
            trainable_state(self.model) if self.rank == 0 else None,
            optimizer,
            scheduler,
            rng,
            state,
        )
        if self.rank == 0:
            checkpoint.prune(self.out, self.config.keep_checkpoints)
        self._emit(event="checkpoint", path=str(directory), step=global_step)
        return directory

    def _resume_point(self):
        from ..errors import UsageError
        from . import checkpoint

        cfg = self.config
        if cfg.resume is None:
            if checkpoint.latest(self.out) is not None:
                raise UsageError(
                    f"{self.out} already holds training checkpoints",
                    hint="continue with --resume auto, or choose another --out",
                )
            return None
        path = checkpoint.latest(self.out) if cfg.resume == "auto" else Path(cfg.resume)
        if path is None:
            return None  # `auto` with nothing to resume starts fresh
        if not (Path(path) / checkpoint.STATE_FILE).is_file():
            raise UsageError(f"{path} is not a complete training checkpoint")
        state = checkpoint.read_state(path)
        if state["config"] != json.loads(json.dumps(cfg.fingerprint())):
            raise UsageError(
                f"{path} was made with other training settings", hint="resume with the same flags as the original run"
            )
        if state["data_sha256"] != self.data.sha256:
            raise UsageError(f"{path} was trained on other data (sha256 differs)")
        if state.get("world_size", 1) != self.world:
            raise UsageError(f"{path} was made with {state['world_size']} processes; resume with the same number")
        return path, state

    # the run ----------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._setup()
        self.out.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            return self._run()

    def _exclusive(self):
        """Hold `<out>/.lgemma-train.lock` for the run (the main process; other ranks share its
        directory): a second `lgemma train` into the same --out, e.g. `--resume auto` typed in
        another terminal while the first still runs, would interleave checkpoints and metrics."""
        if not self.accelerator.is_main_process:
            return nullcontext()
        import filelock

        try:
            return filelock.FileLock(str(self.out / LOCK_NAME)).acquire(timeout=0)  # released on leaving `with`
        except filelock.Timeout:
            from ..errors import UsageError

            raise UsageError(
                f"another lgemma train is writing to {self.out}",
                hint="wait for it to finish, or stop it (Ctrl-C saves a checkpoint) and run again with --resume auto",
            ) from None

    def _run(self) -> TrainResult:
        from . import checkpoint
        from .output import save_final
        from .validate import validate

        cfg, acc = self.config, self.accelerator
        resume = self._resume_point()
        if resume is None and acc.is_main_process:
            checkpoint.truncate_metrics(
                self.out, 0
            )  # a fresh start: no lines of a run killed before its first checkpoint
        global_step, start_stage, start_step, loaded = 0, None, 0, None
        if resume is not None:
            path, state = resume
            loaded = checkpoint.load_tensors(path, self.rank)
            from .prepare import load_trainable_state

            load_trainable_state(self.model, loaded["trainable"])
            global_step, start_stage, start_step = state["global_step"], state["stage"], state["stage_step"]
            if acc.is_main_process:
                checkpoint.truncate_metrics(self.out, global_step)
            self._emit(event="resume", path=str(path), step=global_step, stage=start_stage)
        stages = cfg.curriculum.stages()
        total_steps = sum(self.stage_steps(s) for s in stages)
        self._emit(
            event="start",
            rows=len(self.data),
            skipped=len(self.data.problems),
            stages=stages,
            total_steps=total_steps,
            processes=self.world,
            precision=self.precision,
            markers=list(self.markers),
            steps_per_epoch=self.steps_per_epoch,
        )
        metrics = open(self.out / "metrics.jsonl", "a", encoding="utf-8") if acc.is_main_process else None
        summaries, last_loss, started, done_steps = [], None, time.perf_counter(), 0
        completed = True
        optimizer = scheduler = None
        pos = None  # (global step, stage, step within stage, RNG) of the next step to run
        try:
            for stage in stages:
                if start_stage is not None and stage < start_stage:
                    continue
                n_steps = self.stage_steps(stage)
                optimizer, scheduler = self._new_optimizer()
                first = 0
                if start_stage == stage and loaded is not None:
                    checkpoint.set_rng_state(loaded["rng"])
                    if start_step > 0:  # mid-stage: same optimizer; at a stage start it is reset
                        optimizer.load_state_dict(loaded["optimizer"])
                        scheduler.load_state_dict(loaded["scheduler"])
                    first, loaded = start_step, None
                pos = (global_step, stage, first, checkpoint.rng_state())
                self._emit(
                    event="stage_start",
                    stage=stage,
                    steps=n_steps,
                    thoughts=min(stage, cfg.curriculum.max_stage) * cfg.curriculum.thoughts_per_step,
                )
                losses = []
                for stage_step in range(first, n_steps):
                    if cfg.max_steps is not None and global_step >= cfg.max_steps:
                        completed = False
                        break
                    t0 = time.perf_counter()
                    loss, tgt_tokens, seq_tokens = self._step(
                        self._micro_batches(stage, stage_step, global_step), optimizer, scheduler
                    )
                    global_step += 1
                    pos = (global_step, stage, stage_step + 1, checkpoint.rng_state())
                    done_steps += 1
                    losses.append(loss)
                    last_loss = loss
                    dt = time.perf_counter() - t0
                    elapsed = time.perf_counter() - started
                    record = {
                        "step": global_step,
                        "stage": stage,
                        "stage_step": stage_step + 1,
                        "loss": loss,
                        "lr": scheduler.get_last_lr()[0],
                        "target_tokens": tgt_tokens,
                        "tokens_per_s": seq_tokens / dt if dt > 0 else None,
                        "step_s": dt,
                        "eta_s": elapsed / done_steps * (total_steps - global_step),
                    }
                    if metrics:
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                    self._emit(event="step", total_steps=total_steps, **record)
                    if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and stage_step + 1 < n_steps:
                        self._checkpoint(*pos[:3], optimizer, scheduler, pos[3])
                if not completed:
                    self._checkpoint(*pos[:3], optimizer, scheduler, pos[3])
                    break
                # stage end: the next stage starts at its step 0 with a fresh optimizer
                last = stage == stages[-1]
                nxt = stage + 1 if last else stages[stages.index(stage) + 1]
                pos = (global_step, nxt, 0, checkpoint.rng_state())
                self._checkpoint(*pos[:3], optimizer, scheduler, pos[3], done=last)
                summary = {
                    "event": "stage_end",
                    "stage": stage,
                    "step": global_step,
                    "mean_loss": sum(losses) / len(losses) if losses else None,
                }
                if self.valid:
                    if acc.is_main_process:
                        summary["valid"] = validate(self, stage)
                    acc.wait_for_everyone()
                summaries.append(summary)
                if metrics:
                    metrics.write(json.dumps(summary) + "\n")
                    metrics.flush()
                self._emit(**summary)
        except KeyboardInterrupt:
            if pos is not None and optimizer is not None:
                self._checkpoint(*pos[:3], optimizer, scheduler, pos[3])
            raise
        finally:
            if metrics:
                metrics.close()
        acc.wait_for_everyone()
        if completed and acc.is_main_process:
            try:
                save_final(self)
            except Exception as exc:
                if not checkpoint.disk_full(exc, self.out):
                    raise
                from ..errors import DiskFullError

                raise DiskFullError(
                    f"disk full while writing the trained model into {self.out}; the last checkpoint is kept",
                    hint="free some space, then run the same command with --resume auto to write it",
                ) from None
            self._emit(event="done", out=str(self.out), steps=global_step)
        acc.wait_for_everyone()
        return TrainResult(self.out, global_step, last_loss, summaries, completed)
