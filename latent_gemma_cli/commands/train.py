"""`lgemma train`: the COCONUT multi-stage curriculum on a base model.

Only typer, typing and the standard library at top level; torch, transformers, accelerate and
peft are imported inside the command so `lgemma --help` stays fast.
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from ..completion import complete_model
from ..options import ColumnsOpt, DataOfflineOpt, FilterLangOpt, QuietOpt

TRAIN_HELP = """Train a model for `--mode coconut` with the COCONUT curriculum (Hao et al. 2024).

Stage 0 trains the full chain of thought as text ([prompt] steps ### answer <eos>, no markers).
Stage s = 1..N replaces the first s steps by s*c continuous thoughts:
[prompt] <bot> [s*c thoughts] <eot> remaining steps ### answer <eos>.
A final stage N+1 removes every step and keeps N*c thoughts (what `ask --mode coconut` runs).
Rows without steps still train s*c thoughts (there is simply nothing to remove).
The loss covers only the remaining steps, the answer and <eos>. The optimizer resets at each stage.
The paper's optional "paths" stage is not trained.

Data: JSON Lines {question, steps, answer}, COCONUT JSON lists (ProsQA, GSM8k), instruction
{instruction, input, output}, pairs {ja, en} (translation), JCommonsenseQA, JSQuAD (--format).
Bad records are reported with file and line, then skipped or fatal (--on-bad-record).

Several GPUs (data parallel):
accelerate launch --multi_gpu --num_processes 4 -m latent_gemma_cli train --model BASE --data TRAIN --out DIR
(--batch-size is per process; on CPUs: python -m torch.distributed.run --nproc_per_node 2 -m latent_gemma_cli train ...). OUT holds checkpoints/, metrics.jsonl and, at the end, a normal
Hugging Face model directory with lgemma_latent.json and train_fingerprints.json.
Ctrl-C saves a checkpoint and exits 130; continue with --resume auto.
"""


def train(
    data: Annotated[
        str,
        typer.Option(
            "--data", help="Training data file, or a hub dataset hf:OWNER/NAME[/CONFIG][@REVISION][:SPLIT] (streamed)."
        ),
    ],
    out: Annotated[
        str, typer.Option("--out", "-o", help="Output directory (checkpoints, metrics.jsonl, final model).")
    ],
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            autocompletion=complete_model,
            help="Base model: catalogue name, hub id in the cache, or directory. [default: config `model`]",
        ),
    ] = None,
    valid: Annotated[
        Optional[str],
        typer.Option(
            "--valid", help="Validation data (a file or hf:...): accuracy after each stage (never the training rows)."
        ),
    ] = None,
    columns: ColumnsOpt = None,
    filter_lang: FilterLangOpt = False,
    offline: DataOfflineOpt = False,
    data_format: Annotated[
        str,
        typer.Option(
            "--format", help="auto | jsonl | coconut | instruction | pairs | jcommonsenseqa | jsquad | squad."
        ),
    ] = "auto",
    direction: Annotated[Optional[str], typer.Option("--direction", help="Pairs data: ja-en | en-ja | both.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Use at most this many training rows.")] = None,
    stages: Annotated[int, typer.Option("--stages", help="Max latent stage N (0 trains only the language stage).")] = 3,
    thoughts_per_step: Annotated[
        int, typer.Option("--thoughts-per-step", "-c", help="Continuous thoughts per removed step (c).")
    ] = 1,
    epochs_per_stage: Annotated[int, typer.Option("--epochs-per-stage", help="Epochs per stage.")] = 3,
    steps_per_stage: Annotated[
        Optional[int], typer.Option("--steps-per-stage", help="Optimizer steps per stage, instead of epochs.")
    ] = None,
    final_epochs: Annotated[
        Optional[int],
        typer.Option(
            "--final-epochs",
            help="Length of the final all-latent stage N+1 (epochs, or steps with --steps-per-stage); 0 skips it. [default: as other stages]",
        ),
    ] = None,
    stage0_epochs: Annotated[
        Optional[int],
        typer.Option(
            "--stage0-epochs",
            help="Length of the language stage 0 (epochs, or steps with --steps-per-stage). [default: as other stages]",
        ),
    ] = None,
    first_stage: Annotated[
        int,
        typer.Option(
            "--first-stage",
            help="Start the curriculum at this stage: 1 skips the language stage when --model is already a CoT-trained model (the paper's GSM8k recipe).",
        ),
    ] = 0,
    mix_prob: Annotated[
        float,
        typer.Option(
            "--mix-prob", help="Per-row probability of training at another stage (the paper's mixing; see --mix-from)."
        ),
    ] = 0.0,
    mix_from: Annotated[
        str,
        typer.Option(
            "--mix-from",
            help="Where a mixed row's stage is drawn from: earlier (the other stages reached so far) | any (the reference code's: 0 to the row's step count, later stages included, in every stage).",
        ),
    ] = "earlier",
    stage0_bot: Annotated[
        bool,
        typer.Option(
            "--stage0-bot",
            help="Language-stage rows end their prompt with <bot> (the written chain follows it), so the <bot> position learns to predict the first step and the first thought (its hidden state) starts out as that step. Off: the paper's layout.",
        ),
    ] = False,
    feedback: Annotated[
        str,
        typer.Option(
            "--feedback",
            help="How a thought's last hidden state becomes the next input: identity (the paper's) | embed_norm (rescaled to the mean token-embedding norm) | token_mix (the expected token embedding under the model's own next-token distribution: softmax of its logits over the whole vocabulary, times the embedding table) | pause (the paper's pause-as-thought control: every thought position gets one fixed learned <pause> embedding instead, same curriculum). Recorded with the model.",
        ),
    ] = "identity",
    translation_prompt: Annotated[
        str,
        typer.Option(
            "--translation-prompt",
            help='How translation rows are prompted (models without a chat template): few_shot (three example pairs, what a base model needs) | bare ("Japanese: ...\\nEnglish:" alone: a quarter of the tokens to train and to prefill). Recorded with the model; translate and eval use it.',
        ),
    ] = "few_shot",
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (AdamW).")] = 1e-4,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")] = 0.01,
    warmup_steps: Annotated[
        int, typer.Option("--warmup-steps", help="Linear LR warm-up steps at the start of each stage.")
    ] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per micro-batch and process.")] = 8,
    bucket_by_length: Annotated[
        bool,
        typer.Option(
            "--bucket-by-length",
            help="Put rows of similar prompt length in the same micro-batches (sorted within windows of 16 "
            "batches, batch order shuffled): less padding, faster steps, different batches.",
        ),
    ] = False,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")] = 1,
    max_length: Annotated[
        int,
        typer.Option("--max-length", help="Longest sequence in tokens (thoughts included); targets past it are cut."),
    ] = 1024,
    max_grad_norm: Annotated[float, typer.Option("--max-grad-norm", help="Gradient clipping norm; 0 disables.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for data order, mixing and initialisation.")] = 0,
    lora: Annotated[
        bool,
        typer.Option(
            "--lora/--full",
            help="LoRA adapters (merged at the end; marker embeddings train too) or full fine-tuning. Needs the `lora` extra.",
        ),
    ] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha.")] = 32,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout", help="LoRA dropout.")] = 0.0,
    gradient_checkpointing: Annotated[
        bool,
        typer.Option("--gradient-checkpointing", help="Recompute MLP activations in the backward pass to save memory."),
    ] = False,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 autocast on a bf16 GPU, else fp32) | no | bf16.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    on_bad_record: Annotated[
        str, typer.Option("--on-bad-record", help="skip | fail: what a bad record does (each is reported).")
    ] = "fail",
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Also checkpoint every N optimizer steps (0: stage ends only).")
    ] = 0,
    keep_checkpoints: Annotated[int, typer.Option("--keep-checkpoints", help="Checkpoints kept (0 keeps all).")] = 2,
    resume: Annotated[
        Optional[str], typer.Option("--resume", help="auto (latest in --out) or a checkpoint directory.")
    ] = None,
    valid_limit: Annotated[int, typer.Option("--valid-limit", help="Validation rows used per stage.")] = 100,
    valid_max_new_tokens: Annotated[
        int, typer.Option("--valid-max-new-tokens", help="Answer length limit during validation.")
    ] = 64,
    save_dtype: Annotated[
        str, typer.Option("--save-dtype", help="float32 | bfloat16: dtype of the saved weights.")
    ] = "float32",
    max_steps: Annotated[
        Optional[int],
        typer.Option("--max-steps", help="Stop (with a checkpoint) after this many optimizer steps in total."),
    ] = None,
    log_every: Annotated[
        int, typer.Option("--log-every", help="Plain-text progress line every N steps when stderr is not a terminal.")
    ] = 10,
    quiet: QuietOpt = False,
) -> None:
    """Train a model for `--mode coconut` with the COCONUT curriculum (see the long help)."""
    from ..errors import UsageError
    from ..latent_spec import FEEDBACKS, TRANSLATION_PROMPTS
    from ..training.curriculum import MIX_FROM

    choices = {
        "--on-bad-record": (on_bad_record, ("skip", "fail")),
        "--precision": (precision, ("auto", "no", "bf16")),
        "--device": (device, ("auto", "cpu", "cuda")),
        "--feedback": (feedback, FEEDBACKS),
        "--translation-prompt": (translation_prompt, TRANSLATION_PROMPTS),
        "--mix-from": (mix_from, MIX_FROM),
        "--save-dtype": (save_dtype, ("float32", "bfloat16")),
    }
    for flag, (value, allowed) in choices.items():
        if value not in allowed:
            raise UsageError(f"{flag} {value!r} is not one of {', '.join(allowed)}")
    for flag, value in {
        "--batch-size": batch_size,
        "--grad-accum": grad_accum,
        "--thoughts-per-step": thoughts_per_step,
        "--max-length": max_length,
    }.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if stages < 0 or epochs_per_stage < 1 or (steps_per_stage is not None and steps_per_stage < 1):
        raise UsageError("--stages must be 0 or more and each stage at least 1 epoch or step")
    if not 0 <= mix_prob < 1:
        raise UsageError("--mix-prob must be in [0, 1)")
    if not 0 <= first_stage <= stages:
        raise UsageError(f"--first-stage {first_stage} is not valid: use 0 to --stages ({stages})")
    import math

    # Checked here, before the model loads and before --out is created: AdamW would only refuse
    # them after both, and a NaN would train silently.
    for flag, value, low, open_low in (
        ("--lr", lr, 0.0, True),
        ("--weight-decay", weight_decay, 0.0, False),
        ("--max-grad-norm", max_grad_norm, 0.0, False),
        ("--lora-dropout", lora_dropout, 0.0, False),
    ):
        if not math.isfinite(value) or value < low or (open_low and value == low):
            raise UsageError(f"{flag} {value} is not valid: use a finite number {'>' if open_low else '>='} {low:g}")
    if lora_dropout >= 1:
        raise UsageError(f"--lora-dropout {lora_dropout} is not valid: use a number in [0, 1)")
    for flag, value, low in (
        ("--warmup-steps", warmup_steps, 0),
        ("--lora-r", lora_r, 1),
        ("--lora-alpha", lora_alpha, 1),
        ("--valid-limit", valid_limit, 1),
        ("--valid-max-new-tokens", valid_max_new_tokens, 1),
        ("--checkpoint-every", checkpoint_every, 0),
        ("--keep-checkpoints", keep_checkpoints, 0),
        ("--log-every", log_every, 1),
        ("--final-epochs", final_epochs if final_epochs is not None else 0, 0),
        ("--stage0-epochs", stage0_epochs if stage0_epochs is not None else 1, 1),
        ("--max-steps", max_steps if max_steps is not None else 1, 1),
        ("--limit", limit if limit is not None else 1, 1),
    ):
        if value < low:
            raise UsageError(f"{flag} {value} is not valid: use an integer >= {low}")
    if not 0 <= seed <= 2**64 - 1:
        raise UsageError(f"--seed {seed} is out of range: use 0 to 2**64-1")

    from .. import config as lg_config
    from ..datasets import DataOptions, parse_columns
    from ..render import Output
    from ..training.curriculum import Curriculum
    from ..training.prepare import LoraSettings
    from ..training.trainer import TrainConfig, Trainer
    from ._shared import quiet_libraries

    quiet_libraries()
    output = Output(quiet=quiet)
    cfg = TrainConfig(
        model=lg_config.resolve("model", model),
        data=data,
        data_options=DataOptions(columns=parse_columns(columns), filter_lang=filter_lang, offline=offline),
        out=out,
        valid=valid,
        data_format=data_format,
        direction=direction,
        limit=limit,
        curriculum=Curriculum(
            max_stage=stages,
            thoughts_per_step=thoughts_per_step,
            epochs_per_stage=epochs_per_stage,
            steps_per_stage=steps_per_stage,
            final_epochs=final_epochs,
            mix_prob=mix_prob,
            mix_from=mix_from,
            first_stage=first_stage,
            stage0_bot=stage0_bot,
            stage0_length=stage0_epochs,
        ),
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        batch_size=batch_size,
        bucket_by_length=bucket_by_length,
        translation_prompt=translation_prompt,
        grad_accum=grad_accum,
        max_length=max_length,
        max_grad_norm=max_grad_norm,
        seed=seed,
        lora=LoraSettings(lora_r, lora_alpha, lora_dropout) if lora else None,
        gradient_checkpointing=gradient_checkpointing,
        precision=precision,
        device=device,
        on_bad_record=on_bad_record,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        resume=resume,
        valid_limit=valid_limit,
        valid_max_new_tokens=valid_max_new_tokens,
        save_dtype=save_dtype,
        max_steps=max_steps,
        feedback=feedback,
    )
    with output.progress() as bar:
        view = _ProgressView(output, bar, log_every)
        result = Trainer(cfg, events=view).run()
    if result.completed:
        output.result(str(result.out))
    else:
        output.info(f"stopped after {result.steps} steps (--max-steps); continue with --resume auto")


class _ProgressView:
    """Turns trainer events into a Rich bar (terminal) or occasional plain lines (pipes)."""

    def __init__(self, output, bar, log_every: int):
        self.output, self.bar, self.log_every = output, bar, max(1, log_every)
        self.task = None
        self.started = time.perf_counter()

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        out = self.output
        if kind == "start":
            out.info(
                f"training {event['rows']} rows ({event['skipped']} skipped), stages {event['stages']}, {event['total_steps']} steps, "
                f"{event['processes']} process(es), precision {event['precision']}, markers {' '.join(event['markers'])}"
            )
            self.task = self.bar.add_task("training", total=event["total_steps"])
        elif kind == "problem":
            out.warn(f"bad record: {event['message']}")
        elif kind == "filtered":
            out.info(event["message"])
        elif kind == "resume":
            out.info(f"resuming from {event['path']} (step {event['step']}, stage {event['stage']})")
        elif kind == "stage_start":
            out.info(f"stage {event['stage']}: {event['steps']} steps, {event['thoughts']} thoughts")
        elif kind == "step":
            rate = event["tokens_per_s"] or 0.0
            desc = f"stage {event['stage']} step {event['step']} loss {event['loss']:.4f} lr {event['lr']:.2e} {rate:.0f} tok/s"
            if self.task is not None:
                self.bar.update(self.task, completed=event["step"], description=desc)
            if not out.fancy and event["step"] % self.log_every == 0:
                out.info(f"{desc} ({event['step']}/{event['total_steps']}, {event['eta_s']:.0f}s left)")
        elif kind == "stage_end":
            valid = event.get("valid")
            extra = (
                f", valid accuracy {valid['accuracy']:.3f} ({valid['mode']}, {valid['rows']} rows)"
                if valid and valid["accuracy"] is not None
                else ""
            )
            mean = event["mean_loss"]
            out.info(
                f"stage {event['stage']} done at step {event['step']}: mean loss {mean:.4f}{extra}"
                if mean is not None
                else f"stage {event['stage']} done"
            )
        elif kind == "checkpoint":
            if not out.quiet:
                out.info(f"checkpoint {event['path']}")
        elif kind == "done":
            out.info(f"saved {event['out']} after {event['steps']} steps in {time.perf_counter() - self.started:.0f}s")
