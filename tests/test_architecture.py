"""The package's seams: layering without cycles, one owner per rule, and training validation and
`lgemma eval` building the same prompt and grading the same answer the same way (issue 19)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latent_gemma_cli"
# The app, its entry point, and the generator of completion scripts from the app.
COMMAND_LAYER = {"cli", "__main__", "completion_scripts"}
# Modules the command layer, config and completion use before any model code: standard library
# (and the project's other light modules) at module level only.
LIGHT = {
    "errors",
    "settings",
    "files",
    "language",
    "paths",
    "catalogue",
    "latent_spec",
    "config",
    "inputs",
    "store",
    "keepalive",
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts)


def imports_of(path: Path, top_level_only: bool) -> set[str]:
    """Project modules (dotted, relative to the package) and outside packages a module imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here[:-1] if path.name != "__init__.py" else here
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(
                    alias.name.replace("latent_gemma_cli.", "")
                    if alias.name.startswith("latent_gemma_cli")
                    else "ext:" + alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod.startswith("latent_gemma_cli"):
                    found.add(mod.removeprefix("latent_gemma_cli").lstrip("."))
                else:
                    found.add("ext:" + mod.split(".")[0])
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, node.module] if node.module else base)
            if node.module is None:  # from . import a, b
                for alias in node.names:
                    found.add(".".join([*base, alias.name]).strip("."))
            else:
                found.add(target.strip("."))
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_library_modules_never_import_the_command_layer():
    offenders = {}
    for name, path in MODULES.items():
        if name in COMMAND_LAYER or name.startswith("commands"):
            continue
        bad = {m for m in imports_of(path, top_level_only=False) if m.split(".")[0] in ("cli", "commands")}
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_commands_never_import_cli():
    offenders = {
        name: sorted(m for m in imports_of(p, False) if m == "cli")
        for name, p in MODULES.items()
        if name.startswith("commands")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycle_at_module_level():
    graph = {
        name: {m for m in imports_of(p, True) if not m.startswith("ext:") and m in MODULES}
        for name, p in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_light_modules_import_only_the_standard_library_at_module_level():
    for name in LIGHT:
        outside = {m for m in imports_of(MODULES[name], True) if m.startswith("ext:") and m[4:] not in STDLIB}
        project = {m for m in imports_of(MODULES[name], True) if not m.startswith("ext:")}
        assert outside == set(), f"{name} imports {outside} at module level"
        assert project <= LIGHT | {""}, f"{name} imports heavier project modules {project - LIGHT}"


def test_each_rule_has_one_owner():
    """Constants and rules that used to be spelled in several places are defined once."""
    import re

    owners = {
        r"^FINGERPRINTS_FILE = ": "contamination",
        r"^MODES = ": "settings",
        r"^EXIT_CODES_HELP = ": "errors",
        r"^CHOICE_PROMPT = ": "tasks",
        r"^def atomic_write\(": "files",
        r"^def has_japanese\(": "language",
        r"^def text_lines\(": "datasets",
        r"^def read_predictions\(": "datasets",
        r"^def check_contamination\(": "contamination",
    }
    for pattern, owner in owners.items():
        where = [name for name, p in MODULES.items() if re.search(pattern, p.read_text(encoding="utf-8"), re.M)]
        assert where == [owner], f"{pattern} is defined in {where}"
    # no second hand-written Japanese character range outside language.py
    ranges = [name for name, p in MODULES.items() if name != "language" and "\\u3040" in p.read_text(encoding="utf-8")]
    assert ranges == []


# --- training validation and eval agree -------------------------------------------------------------


def _examples():
    from latent_gemma_cli.datasets import Example

    return {
        "qa": Example(question="Is Tom a lempus or a gorpus?", answer="Tom is a lempus.", steps=["Tom is a wumpus."]),
        "choice": Example(
            question="猫はどこで寝ますか？",
            answer="屋根",
            choices=["海", "屋根", "駅"],
            label=1,
            task="choice",
            lang="ja",
        ),
        "translate": Example(
            question="猫は寝ています。", answer="The cat sleeps.", task="translate", source_lang="ja", target_lang="en"
        ),
    }


def _generation(prompt_ids, settings, text: str):
    """What the engine returns for one prompt whose single path wrote `text`."""
    from latent_gemma_cli.engine import Generation, PathResult

    path = PathResult(text=text, token_ids=[5], confidence=1.0, finished=True)
    return Generation(
        paths=[path], chosen=0, prompt_ids=list(prompt_ids), mode=settings.mode, num_thoughts=0, markers=None, seed=None
    )


@pytest.mark.parametrize("task", ["qa", "choice", "translate"])
@pytest.mark.parametrize("output_is_right", [True, False], ids=["right", "wrong"])
def test_training_validation_and_eval_build_the_same_prompt_and_score_the_same_way(
    tiny_gemma2, monkeypatch, task, output_is_right
):
    from latent_gemma_cli import evaluation
    from latent_gemma_cli.engine import Engine
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.training import data as train_data
    from latent_gemma_cli.training.curriculum import Curriculum
    from latent_gemma_cli.training.validate import validate

    example = _examples()[task]
    outputs = {
        "qa": ("Tom is a wumpus.\n### Tom is a lempus." if output_is_right else "### Tom is a gorpus."),
        "choice": ("1" if output_is_right else "0"),
        "translate": ("The cat sleeps." if output_is_right else "A dog runs."),
    }
    seen: list[tuple[list[int], tuple]] = []

    def fake_generate(self, prompt_ids, settings, *, on_token=None):
        seen.append((list(prompt_ids), tuple(settings.stop_ids)))
        return _generation(prompt_ids, settings, outputs[task])

    def fake_generate_batch(self, prompts, settings):
        return [fake_generate(self, ids, settings) for ids in prompts]

    monkeypatch.setattr(Engine, "generate", fake_generate)
    monkeypatch.setattr(Engine, "generate_batch", fake_generate_batch)
    loaded = load_model(str(tiny_gemma2), device="cpu")
    # what training trains on
    trained_prompt = train_data.example_prompt(loaded.tokenizer, example)
    # what training's per-stage validation runs and counts
    trainer = SimpleNamespace(
        config=SimpleNamespace(
            curriculum=Curriculum(max_stage=1),
            feedback="identity",
            valid_max_new_tokens=8,
            batch_size=8,
            translation_prompt="few_shot",
        ),
        markers=("<unused0>", "<unused1>"),
        marker_ids=tuple(loaded.tokenizer.convert_tokens_to_ids(["<unused0>", "<unused1>"])),
        hf=loaded.model,
        tokenizer=loaded.tokenizer,
        valid=[example],
    )
    valid = validate(trainer, stage=0)
    # what `lgemma eval` runs and counts
    result = evaluation.run_mode(loaded, [example], "off", evaluation.tasks.resolve_task([example], "auto"))
    assert len(seen) == 2
    (valid_prompt, valid_stops), (eval_prompt, eval_stops) = seen
    assert trained_prompt == valid_prompt == eval_prompt
    assert valid_stops == eval_stops
    assert valid["accuracy"] == (1.0 if output_is_right else 0.0)
    assert result.records[0].correct is output_is_right
    if task == "choice":  # the options are in the prompt, and the target is the number it asks for
        from latent_gemma_cli.prompting import prompt_ids
        from latent_gemma_cli.tasks import choice_prompt, target_answer

        assert trained_prompt == prompt_ids(loaded.tokenizer, choice_prompt(example))
        assert all(f"{i}. {c}" in choice_prompt(example) for i, c in enumerate(example.choices))
        assert target_answer(example) == "1"


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_training_validation_decodes_in_batches_of_one_task_and_grades_each_row_by_its_own_output(
    tiny_gemma2, monkeypatch, batch_size
):
    from latent_gemma_cli import tasks
    from latent_gemma_cli.datasets import Example
    from latent_gemma_cli.engine import Engine
    from latent_gemma_cli.loading import load_model
    from latent_gemma_cli.training.curriculum import Curriculum
    from latent_gemma_cli.training.validate import validate

    loaded = load_model(str(tiny_gemma2), device="cpu")
    ex = _examples()
    qa = [Example(question=f"Is Tom{i} a lempus or a gorpus?", answer=f"Tom{i} is a lempus.") for i in range(3)]
    valid = [qa[0], ex["translate"], qa[1], ex["choice"], qa[2]]
    # the output of a prompt is the answer of the row it came from for qa rows 0 and 2 only
    right = {tuple(tasks.prompt_ids(loaded.tokenizer, r)): r.answer for r in (qa[0], qa[2])}
    calls: list[tuple[int, tuple]] = []

    prompts_seen: list[list[int]] = []

    def fake_generate_batch(self, prompts, settings):
        calls.append((len(prompts), settings.stop_ids))
        prompts_seen.extend(list(p) for p in prompts)
        return [_generation(ids, settings, right.get(tuple(ids), "wrong")) for ids in prompts]

    monkeypatch.setattr(Engine, "generate_batch", fake_generate_batch)
    trainer = SimpleNamespace(
        config=SimpleNamespace(
            curriculum=Curriculum(max_stage=1),
            feedback="identity",
            valid_max_new_tokens=8,
            batch_size=batch_size,
            translation_prompt="few_shot",
        ),
        markers=("<unused0>", "<unused1>"),
        marker_ids=tuple(loaded.tokenizer.convert_tokens_to_ids(["<unused0>", "<unused1>"])),
        hf=loaded.model,
        tokenizer=loaded.tokenizer,
        valid=valid,
    )
    result = validate(trainer, stage=0)
    assert result["accuracy"] == 2 / 5 and result["rows"] == 5
    assert sum(n for n, _ in calls) == 5 and all(n <= batch_size for n, _ in calls)
    # one task per call: qa rows together (up to the batch size), translate and choice apart
    assert len(calls) == {1: 5, 2: 4, 8: 3}[batch_size]
    # a language stage trained with <bot> after the prompt is validated with it there
    plain, bot = list(prompts_seen), loaded.tokenizer.convert_tokens_to_ids("<unused0>")
    prompts_seen.clear()
    trainer.config.curriculum = Curriculum(max_stage=1, stage0_bot=True)
    validate(trainer, stage=0)
    assert prompts_seen == [p + [bot] for p in plain]


def test_engine_stream_yields_the_tokens_of_the_generation(tiny_gemma2):
    from latent_gemma_cli.engine import Settings
    from latent_gemma_cli.loading import load_model

    loaded = load_model(str(tiny_gemma2), device="cpu")
    ids = loaded.tokenizer("Tokyo is the capital of", add_special_tokens=True)["input_ids"]
    settings = Settings(mode="soft", num_thoughts=2, max_new_tokens=6)
    events = list(loaded.engine.stream(ids, settings))
    final = events[-1].generation
    assert final is not None and all(e.generation is None for e in events[:-1])
    assert [e.token_id for e in events[:-1]] == final.paths[0].token_ids
    assert final.paths[0].token_ids == loaded.engine.generate(ids, settings).paths[0].token_ids
