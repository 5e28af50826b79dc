"""The COCONUT stage schedule and the token sequences it produces (method.md section 5).

Stages, with N = max stage and c = thoughts per step:

* stage 0 ("language"): no markers, no thoughts; the full chain of thought as text:
  ``[prompt] format_target(steps, answer) <eos>``. Its validation decodes in `off` mode, which
  sees exactly this layout (no empty ``<bot><eot>`` pair is trained or inferred). With
  `stage0_bot` the prompt ends with <bot> (``[prompt] <bot> format_target(...)``), and
  validation appends it too.
* stage s in 1..N ("latent"): the first s steps are replaced by s * c thought positions:
  ``[prompt] <bot> [s*c thoughts] <eot> format_target(steps[s:], answer) <eos>``.
  An example with fewer than s steps (or none) still gets s * c thoughts; there is simply
  nothing left to remove (the paper does the same).
* stage N + 1 ("final"): every step removed, thoughts stay at N * c. This is the layout that
  `lgemma ask --mode coconut` runs with the saved `num_thoughts = N * c`.

The paper's optional "paths" refinement stage is not implemented: confidence comes from
CoT-decoding at inference (method.md section 3) on the model this curriculum trains.

Stage mixing (the paper's "mix data from other stages"), with probability `mix_prob` per
example, decided by a generator seeded from (seed, stage, step, example index), so a resumed run
draws the same stages:

* `mix_from="earlier"` (lgemma's default): a stage drawn uniformly from the other stages reached
  so far (0..current - 1); stage 0 never mixes;
* `mix_from="any"` (the reference implementation's `uniform_prob`): a stage drawn uniformly from
  0..len(steps) of that example, later stages included, in every stage (stage 0 too); a draw
  past N is the final all-latent layout.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ..answers import format_target

IGNORE = -100
MIX_FROM = ("earlier", "any")


@dataclass(frozen=True)
class Curriculum:
    """How many stages, thoughts and how long each stage trains."""

    max_stage: int = 3
    thoughts_per_step: int = 1
    epochs_per_stage: int = 3
    # Replaces epochs when set: optimizer steps per stage (handy for smoke runs).
    steps_per_stage: int | None = None
    # Epochs (or steps, with steps_per_stage) of the final all-latent stage N + 1; 0 skips it.
    final_epochs: int | None = None
    mix_prob: float = 0.0
    mix_from: str = "earlier"
    # Start the schedule here: 1 skips the language stage when the base model is already a CoT
    # model (the paper's GSM8k recipe starts COCONUT from its CoT checkpoint).
    first_stage: int = 0
    # Language-stage rows (stage 0, and stage-0 rows mixed into later stages) end their prompt
    # with <bot>: the <bot> position learns to predict the first step, so thought 1 (its last
    # hidden state) starts stage 1 as a stand-in for that step instead of whatever a pretrained
    # model predicts after an unseen token (a person's name, on the synthetic walks).
    stage0_bot: bool = False
    # Epochs (or steps, with steps_per_stage) of the language stage 0; None: as other stages. The
    # paper's GSM8k recipe trains its initial stage longer than each latent stage; a short stage 0
    # that only teaches <bot> (stage0_bot, from a CoT model) is the opposite case.
    stage0_length: int | None = None

    def validate(self) -> None:
        if self.max_stage < 0:
            raise ValueError("max stage must be 0 or more")
        if self.thoughts_per_step < 1:
            raise ValueError("thoughts per step must be 1 or more")
        if self.epochs_per_stage < 1 and not self.steps_per_stage:
            raise ValueError("epochs per stage must be 1 or more")
        if not 0.0 <= self.mix_prob < 1.0:
            raise ValueError("stage mixing probability must be in [0, 1)")
        if not 0 <= self.first_stage <= self.max_stage:
            raise ValueError(f"the first stage must be between 0 and the max stage {self.max_stage}")
        if self.stage0_length is not None and self.stage0_length < 1:
            raise ValueError("the language stage must be at least 1 epoch or step")
        if self.mix_from not in MIX_FROM:
            raise ValueError(f"stage mixing draws from {' or '.join(MIX_FROM)}, not {self.mix_from!r}")

    @property
    def final_stage(self) -> int:
        return self.max_stage + 1

    def stages(self) -> list[int]:
        """Stages in training order: 0..N, then N + 1 unless its length is 0.

        With N = 0 there is no latent stage, so no final all-latent stage either: `--stages 0`
        trains the language stage only (chain of thought as text), as its help says.
        """
        final = self.epochs_per_stage if self.final_epochs is None else self.final_epochs
        with_final = self.max_stage > 0 and final > 0
        return list(range(self.first_stage, self.max_stage + 1)) + ([self.final_stage] if with_final else [])

    def stage_length(self, stage: int) -> int:
        """Epochs (or steps, with steps_per_stage) of a stage."""
        if stage == self.final_stage and self.final_epochs is not None:
            return self.final_epochs
        if stage == 0 and self.stage0_length is not None:
            return self.stage0_length
        return self.steps_per_stage or self.epochs_per_stage

    @property
    def inference_thoughts(self) -> int:
        return self.max_stage * self.thoughts_per_step

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, default in (
            ("mix_from", "earlier"),
            ("first_stage", 0),
            ("stage0_bot", False),
            ("stage0_length", None),
        ):
            if data[key] == default:  # absent at its default: checkpoints from before it still resume
                del data[key]
        return data


@dataclass(frozen=True)
class StagePlan:
    """What one example looks like at one stage."""

    stage: int
    removed: int  # steps replaced by thoughts
    num_thoughts: int
    markers: bool
    remaining: tuple[str, ...]


def plan(steps: list[str], stage: int, curriculum: Curriculum) -> StagePlan:
    """Which steps a stage removes and how many thoughts replace them (the first ones, never the last)."""
    if stage == 0:
        return StagePlan(0, 0, 0, False, tuple(steps))
    s = min(stage, curriculum.max_stage)
    removed = len(steps) if stage > curriculum.max_stage else min(s, len(steps))
    return StagePlan(stage, removed, s * curriculum.thoughts_per_step, True, tuple(steps[removed:]))


def mixed_stage(stage: int, seed: int, step: int, index: int, curriculum: Curriculum, num_steps: int = 0) -> int:
    """The stage an example with `num_steps` steps trains at: `stage`, or with probability
    mix_prob one drawn as `curriculum.mix_from` says (see the module docstring)."""
    if curriculum.mix_prob <= 0 or (stage == 0 and curriculum.mix_from == "earlier"):
        return stage
    rng = random.Random(f"{seed}:{stage}:{step}:{index}")
    if rng.random() >= curriculum.mix_prob:
        return stage
    if curriculum.mix_from == "any":
        return min(rng.randrange(num_steps + 1), curriculum.final_stage)
    return rng.choice([s for s in range(stage + 1) if s != stage])


@dataclass
class TrainSequence:
    """One training example laid out for the forward.

    `prompt` ends with <bot> when `markers`; `tail` starts with <eot> when `markers` and ends with
    <eos>. `tail_labels[i]` is the label of `tail[i]` (IGNORE for <eot>).
    """

    prompt: list[int]
    num_thoughts: int
    tail: list[int]
    tail_labels: list[int]
    markers: bool
    stage: int

    @property
    def length(self) -> int:
        return len(self.prompt) + self.num_thoughts + len(self.tail)

    @property
    def target_tokens(self) -> int:
        return sum(1 for t in self.tail_labels if t != IGNORE)

    def full_labels(self) -> list[int]:
        """Labels over the whole sequence (prompt, <bot>, thoughts, <eot>, target): IGNORE except the target."""
        return [IGNORE] * (len(self.prompt) + self.num_thoughts) + list(self.tail_labels)

    def key(self) -> tuple[int, bool]:
        """Sequences with the same key run in one padded batch."""
        return (self.num_thoughts, self.markers)


def build_sequence(
    prompt_ids: list[int],
    steps: list[str],
    answer: str,
    stage: int,
    curriculum: Curriculum,
    tokenizer: Any,
    marker_ids: tuple[int, int],
    max_length: int | None = None,
) -> TrainSequence:
    """Token layout of an example at a stage; the target is truncated (never the prompt) past max_length."""
    p = plan(steps, stage, curriculum)
    target = list(tokenizer(format_target(list(p.remaining), answer), add_special_tokens=False)["input_ids"])
    target.append(int(tokenizer.eos_token_id))
    if p.markers:
        prompt = list(prompt_ids) + [marker_ids[0]]
        tail = [marker_ids[1]] + target
        labels = [IGNORE] + target
    elif curriculum.stage0_bot:  # `[prompt] <bot> format_target(steps, answer) <eos>`
        prompt, tail, labels = list(prompt_ids) + [marker_ids[0]], target, list(target)
    else:
        prompt, tail, labels = list(prompt_ids), target, list(target)
    seq = TrainSequence(prompt, p.num_thoughts, tail, labels, p.markers, stage)
    if max_length is not None and seq.length > max_length:
        keep = max_length - len(prompt) - p.num_thoughts
        if keep < (3 if p.markers else 2):
            raise ValueError(
                f"prompt of {len(prompt)} tokens plus {p.num_thoughts} thoughts leaves no room for a target within --max-length {max_length}"
            )
        seq.tail, seq.tail_labels = tail[:keep], labels[:keep]
    return seq
