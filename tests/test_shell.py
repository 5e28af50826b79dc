"""Shell integration: completion scripts and the completion protocol, configuration precedence,
`lgemma doctor`, plain output in pipes and under NO_COLOR, and a fast start without torch.

Subprocess tests run the installed `lgemma` console script (or `python -m latent_gemma_cli`)
exactly as a shell would; everything stays offline.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from latent_gemma_cli import completion_scripts, config
from latent_gemma_cli.catalogue import CATALOGUE
from latent_gemma_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "huggingface_hub", "sacrebleu", "peft")
ESC = b"\x1b"


def lgemma() -> list[str]:
    script = Path(sys.executable).with_name("lgemma")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "latent_gemma_cli"]


def run(args: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run lgemma with both streams piped, in the test's (isolated) environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(lgemma() + args, capture_output=True, env=full_env, timeout=300, **kwargs)


def run_in_terminal(args: list[str], env: dict) -> bytes:
    """Run lgemma on a pseudo-terminal (stdout and stderr both a tty); return what it wrote."""
    pty = pytest.importorskip("pty")
    cmd = lgemma() + args
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(cmd[0], cmd, {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", **env})
    chunks = []
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except OSError:  # EIO: the child closed the terminal
        pass
    os.close(fd)
    os.waitpid(pid, 0)
    return b"".join(chunks)


def command_paths() -> list[list[str]]:
    """Every command and sub-command the app has now, other workers' included."""
    import typer.main

    found: list[list[str]] = []

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            found.append(prefix + [name])
            if hasattr(cmd, "commands"):
                walk(cmd, prefix + [name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.fixture
def models_in_place(isolated_home):
    """A registered model under LGEMMA_HOME and a fake hub-cache entry under HF_HOME."""
    (isolated_home / "lgemma-home" / "models" / "my-model").mkdir(parents=True)
    (isolated_home / "hf-home" / "hub" / "models--org--name").mkdir(parents=True)
    return isolated_home


# --- completion ---------------------------------------------------------------------------


def test_committed_completion_scripts_are_current():
    generated = completion_scripts.scripts()
    assert set(generated) == {"lgemma.bash", "_lgemma", "lgemma.fish"}
    for name, text in generated.items():
        assert "_LGEMMA_COMPLETE=complete_" in text, name
        committed = REPO / "completions" / name
        assert committed.is_file(), f"{committed} missing: run python -m latent_gemma_cli.completion_scripts"
        assert committed.read_text(encoding="utf-8") == text, (
            f"{committed} is stale: run python -m latent_gemma_cli.completion_scripts"
        )
    assert completion_scripts.stale(REPO / "completions") == []


def test_stale_check_detects_an_edited_script(tmp_path):
    assert completion_scripts.main([str(tmp_path)]) == 0
    assert completion_scripts.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "_lgemma").write_text("#compdef lgemma\n", encoding="utf-8")
    assert completion_scripts.stale(tmp_path) == ["_lgemma"]
    assert completion_scripts.main(["--check", str(tmp_path)]) == 1


def test_bash_protocol_completes_model_names(models_in_place):
    env = {"_LGEMMA_COMPLETE": "complete_bash", "COMP_WORDS": "lgemma ask --model ", "COMP_CWORD": "3"}
    result = run([], env)
    assert result.returncode == 0, result.stderr
    names = result.stdout.decode().split()
    assert set(CATALOGUE) | {"my-model", "org/name"} <= set(names)

    result = run([], {**env, "COMP_WORDS": "lgemma ask --model gem"})
    assert sorted(result.stdout.decode().split()) == sorted(n for n in CATALOGUE if n.startswith("gem"))
    result = run([], {**env, "COMP_WORDS": "lgemma ask -m my"})
    assert result.stdout.decode().split() == ["my-model"]


@pytest.mark.parametrize(
    "shell, env, expected",
    [
        ("zsh", {"_TYPER_COMPLETE_ARGS": "lgemma ask --model "}, ['"my-model"', '"org/name"', "_arguments"]),
        ("zsh", {"_TYPER_COMPLETE_ARGS": "lgemma ask --max"}, ['"--max-new-tokens"']),
        (
            "fish",
            {"_TYPER_COMPLETE_ARGS": "lgemma ask --lang ", "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
            ["ja", "en"],
        ),
        (
            "fish",
            {"_TYPER_COMPLETE_ARGS": "lgemma ask --mode ", "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
            ["auto", "coconut", "soft", "off"],
        ),
        ("fish", {"_TYPER_COMPLETE_ARGS": "lgemma con", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}, ["config"]),
    ],
)
def test_zsh_and_fish_protocols(models_in_place, shell, env, expected):
    result = run([], {"_LGEMMA_COMPLETE": f"complete_{shell}", **env})
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t")[0] for line in result.stdout.decode().splitlines()]
    for item in expected:
        assert any(item in line for line in lines), (item, lines)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_committed_bash_script_completes_in_bash(models_in_place):
    """Source completions/lgemma.bash in a real bash and press Tab at several places."""
    bin_dir = str(Path(lgemma()[0]).parent) if len(lgemma()) == 1 else None
    if bin_dir is None:
        pytest.skip("no lgemma console script next to the interpreter")
    script = (
        f"source {REPO / 'completions' / 'lgemma.bash'}\n"
        'tab() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _lgemma_completion lgemma; echo "${COMPREPLY[*]}"; }\n'
        "tab lgemma co\n"
        "tab lgemma ask --lang ''\n"
        "tab lgemma ask --model ''\n"
        "tab lgemma config set ''\n"
    )
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    subcommands, langs, models, keys = out.stdout.splitlines()
    assert subcommands.split() == ["config"]
    assert langs.split() == ["ja", "en"]
    assert {"gemma-2-2b-it", "my-model", "org/name"} <= set(models.split())
    assert set(keys.split()) == set(config.KEYS)


# --- fast start ---------------------------------------------------------------------------

_PROBE = r"""
import json, os, sys
HEAVY = %r
cases = json.loads(sys.argv[1])
from latent_gemma_cli.cli import main
seen = {}
for label, argv, env in cases:
    os.environ.update(env)
    sys.argv = ["lgemma"] + argv
    devnull = open(os.devnull, "w")
    sys.stdout = devnull
    try:
        main()
    except SystemExit:
        pass
    finally:
        sys.stdout = sys.__stdout__
        for key in env:
            os.environ.pop(key)
    seen[label] = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps(seen))
"""


def imported_heavy(cases: list[tuple[str, list[str], dict]]) -> dict[str, list[str]]:
    """Heavy modules loaded (cumulatively) after each case, run in one fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE % (HEAVY,), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_help_and_completion_do_not_import_torch(models_in_place):
    cases = [("lgemma --help", ["--help"], {}), ("lgemma", [], {}), ("--version", ["--version"], {})]
    cases += [(" ".join(path) + " --help", path + ["--help"], {}) for path in command_paths()]
    cases += [
        (
            "complete bash --model",
            [],
            {"_LGEMMA_COMPLETE": "complete_bash", "COMP_WORDS": "lgemma ask --model ", "COMP_CWORD": "3"},
        ),
        (
            "complete bash commands",
            [],
            {"_LGEMMA_COMPLETE": "complete_bash", "COMP_WORDS": "lgemma ", "COMP_CWORD": "1"},
        ),
        ("complete zsh options", [], {"_LGEMMA_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "lgemma ask --"}),
        (
            "complete fish --lang",
            [],
            {
                "_LGEMMA_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                "_TYPER_COMPLETE_ARGS": "lgemma ask --lang ",
            },
        ),
    ]
    assert any(label == "ask --help" for label, _, _ in cases)
    seen = imported_heavy(cases)
    assert {label: mods for label, mods in seen.items() if mods} == {}


def test_import_probe_sees_torch_when_a_command_imports_it():
    """The probe above must be able to fail: doctor imports torch, and the probe notices."""
    seen = imported_heavy([("help", ["--help"], {}), ("doctor", ["doctor", "--json"], {})])
    assert seen["help"] == []
    assert "torch" in seen["doctor"]


# --- configuration ------------------------------------------------------------------------


def test_precedence_in_the_library(monkeypatch):
    assert config.resolve("paths") == 1
    assert config.effective()["paths"] == (1, "built-in")
    config.write_value("paths", "2")
    assert config.resolve("paths") == 2
    assert config.effective()["paths"] == (2, "file")
    monkeypatch.setenv("LGEMMA_PATHS", "3")
    assert config.resolve("paths") == 3
    assert config.effective()["paths"] == (3, "LGEMMA_PATHS")
    assert config.resolve("paths", 4) == 4
    monkeypatch.delenv("LGEMMA_PATHS")
    config.write_value("paths", None)
    assert config.resolve("paths") == 1
    assert config.read_file_values() == {}


def show_json(runner: CliRunner, env: dict | None = None) -> dict:
    result = runner.invoke(app, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["keys"]


def test_config_commands_precedence_through_the_cli():
    runner = CliRunner()
    assert show_json(runner)["temperature"] == {
        "value": 0.0,
        "source": "built-in",
        "help": config.KEYS["temperature"].help,
    }

    result = runner.invoke(app, ["config", "set", "temperature", "0.7"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # confirmations go to stderr
    path = runner.invoke(app, ["config", "path"]).stdout.strip()
    assert path == str(config.config_file())
    assert "temperature = 0.7" in Path(path).read_text(encoding="utf-8")
    assert show_json(runner)["temperature"]["value"] == 0.7
    assert show_json(runner)["temperature"]["source"] == "file"
    assert show_json(runner, {"LGEMMA_TEMPERATURE": "1.5"})["temperature"] == {
        "value": 1.5,
        "source": "LGEMMA_TEMPERATURE",
        "help": config.KEYS["temperature"].help,
    }

    lines = runner.invoke(app, ["config", "show"], env={"LGEMMA_MODE": "off"}).stdout.splitlines()
    assert len(lines) == len(config.KEYS)
    assert any(line.split() == ["temperature", "=", "0.7", "(file)"] for line in lines), lines
    assert any(line.split() == ["mode", "=", "off", "(LGEMMA_MODE)"] for line in lines), lines
    assert any(line.split() == ["paths", "=", "1", "(built-in)"] for line in lines), lines

    result = runner.invoke(app, ["config", "unset", "temperature"])
    assert result.exit_code == 0, result.output
    assert show_json(runner)["temperature"]["source"] == "built-in"


def test_flags_beat_environment_beat_file_in_ask(tiny_gemma2, monkeypatch):
    """The number of reasoning paths `ask` decodes follows built-in < file < env < flag."""
    runner = CliRunner()

    def paths_used(*flags: str) -> int:
        result = runner.invoke(
            app,
            [
                "ask",
                "What is the capital of Japan?",
                "--model",
                str(tiny_gemma2),
                "--max-new-tokens",
                "2",
                "--json",
                *flags,
            ],
        )
        assert result.exit_code == 0, result.output
        return len(json.loads(result.stdout)["paths"])

    assert paths_used() == 1
    assert runner.invoke(app, ["config", "set", "paths", "2"]).exit_code == 0
    assert paths_used() == 2
    monkeypatch.setenv("LGEMMA_PATHS", "3")
    assert paths_used() == 3
    assert paths_used("--paths", "4") == 4


def test_model_precedence_in_ask(monkeypatch):
    """Which model `ask` looks for: the error (exit 3) names the one precedence picked."""
    runner = CliRunner()

    def missing_model(*flags: str) -> str:
        result = runner.invoke(app, ["ask", "hello", *flags])
        assert result.exit_code == 3, result.output
        return result.stderr

    assert "'gemma-2-2b-it'" in missing_model()
    runner.invoke(app, ["config", "set", "model", "from-file"])
    assert "'from-file'" in missing_model()
    monkeypatch.setenv("LGEMMA_MODEL", "from-env")
    assert "'from-env'" in missing_model()
    assert "'from-flag'" in missing_model("--model", "from-flag")


@pytest.mark.parametrize(
    "args, env, names",
    [
        (["config", "set", "colour", "blue"], {}, "'colour'"),
        (["config", "unset", "colour"], {}, "'colour'"),
        (["config", "set", "paths", "zero"], {}, "paths"),
        (["config", "set", "top_p", "1.5"], {}, "top_p"),
        (["config", "set", "device", "tpu"], {}, "device"),
        (["config", "show"], {"LGEMMA_TEMPERATURE": "hot"}, "LGEMMA_TEMPERATURE"),
    ],
)
def test_unknown_keys_and_bad_values_are_usage_errors(args, env, names):
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert names in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""
    assert not config.config_file().exists()  # nothing half-written


def test_unknown_key_in_the_file_is_named(isolated_home):
    config.config_file().parent.mkdir(parents=True, exist_ok=True)
    config.config_file().write_text('colour = "blue"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert "'colour'" in result.stderr and str(config.config_file()) in result.stderr


# --- doctor -------------------------------------------------------------------------------


def doctor_json(env: dict | None = None) -> dict:
    result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_doctor_json_shape(models_in_place):
    import torch
    import transformers

    data = doctor_json()
    assert set(data) == {"versions", "devices", "directories", "models", "hub"}
    versions = data["versions"]
    assert set(versions) == {"lgemma", "python", "torch", "transformers", "huggingface_hub"}
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    assert versions["python"] == "%d.%d.%d" % sys.version_info[:3]

    found = data["devices"]["found"]
    assert found[0]["device"] == "cpu" and found[0]["auto_dtype"] == "float32"
    assert set(found[0]) == {"device", "name", "auto_dtype", "auto_quantize"}
    assert found[0]["auto_quantize"].startswith(("int8 in chat, translate, eval and serve", "none ("))
    assert all(set(d) == {"device", "name", "auto_dtype"} for d in found[1:])
    assert (len(found) > 1) == (torch.cuda.is_available() or torch.backends.mps.is_available())
    assert set(data["devices"]["auto"]) == {"device", "device_reason", "dtype", "dtype_reason"}

    dirs = data["directories"]
    assert set(dirs) == {"config_file", "data", "models", "hub_cache"}
    assert dirs["models"] == {
        "path": str(models_in_place / "lgemma-home" / "models"),
        "exists": True,
        "free_bytes": dirs["models"]["free_bytes"],
        "problem": None,
    }
    assert dirs["hub_cache"]["path"] == str(models_in_place / "hf-home" / "hub")
    assert dirs["config_file"]["exists"] is False
    assert all(isinstance(d["free_bytes"], int) and d["free_bytes"] > 0 for d in dirs.values())

    models = {m["name"]: m["source"] for m in data["models"]}
    assert models == {**{n: "catalogue" for n in CATALOGUE}, "my-model": "registered", "org/name": "hub-cache"}

    assert data["hub"]["offline"] is True and data["hub"]["status"] == "offline mode"
    assert data["hub"]["token"] is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_hub_reachable_and_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")

    class Head(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Head)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hub = doctor_json({"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}"})["hub"]
    finally:
        server.shutdown()
    assert hub["status"] == "reachable" and hub["offline"] is False

    hub = doctor_json({"HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}"})["hub"]
    assert hub["status"] == "unreachable"
    hub = doctor_json({"HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_TOKEN": "hf_secret"})["hub"]
    assert hub["token"] is True and "hf_secret" not in json.dumps(hub)
    result = CliRunner().invoke(app, ["doctor", "--offline"], env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.exit_code == 0 and "offline mode" in result.stdout


def test_doctor_text_report(models_in_place):
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    for needle in (
        "versions:",
        "torch:",
        "cpu:",
        "auto dtype float32",
        "free)",
        "my-model (registered)",
        "org/name (hub-cache)",
        "offline mode",
    ):
        assert needle in text, needle


# --- plain output: pipes, NO_COLOR, help ----------------------------------------------------


def test_every_help_lists_exit_codes_and_is_plain_in_pipes():
    for path in [[]] + command_paths():
        result = run(path + ["--help"])
        assert result.returncode == 0, (path, result.stderr)
        assert ESC not in result.stdout + result.stderr, path
        assert b"Exit codes:" in result.stdout and b"130 interrupted" in result.stdout.replace(b"\n  ", b" "), path


@pytest.mark.slow
def test_no_escape_codes_in_pipes(tiny_gemma2, models_in_place):
    cases = [
        ["--version"],
        ["ask", "What is the capital of Japan?", "--model", str(tiny_gemma2), "--max-new-tokens", "2"],
        ["config", "show"],
        ["config", "set", "paths", "2"],
        ["config", "path"],
        ["doctor"],
        ["config", "set", "colour", "blue"],  # an error
        ["ask", "--no-such-flag"],  # a usage error from the parser
        ["ask", "hello", "--model", "not-here"],  # model missing, with a hint
    ]
    if ["models"] in command_paths():
        cases.append(["models"])  # lists local models, offline
    for args in cases:
        result = run(args)
        assert ESC not in result.stdout, args
        assert ESC not in result.stderr, args
        assert result.stdout or result.stderr, args
    assert run(["ask", "--no-such-flag"]).returncode == 2
    assert run(["ask", "hello", "--model", "not-here"]).returncode == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_no_color_on_a_terminal(tiny_gemma2):
    # On a colour terminal errors are decorated (help is plain text everywhere, for start-up
    # speed): the check below can see escapes.
    assert ESC not in run_in_terminal(["--help"], {})
    assert ESC in run_in_terminal(["config", "set", "colour", "blue"], {})
    for args in (
        ["--help"],
        ["ask", "--help"],
        ["config", "show"],
        ["config", "set", "colour", "blue"],
        ["ask", "--no-such-flag"],
        ["ask", "Tokyo?", "--model", str(tiny_gemma2), "--max-new-tokens", "2"],
    ):
        out = run_in_terminal(args, {"NO_COLOR": "1"})
        assert out, args
        assert ESC not in out, (args, out[:300])


def test_python_dash_m_runs_the_same_app():
    out = subprocess.run(
        [sys.executable, "-m", "latent_gemma_cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip().startswith("lgemma ")
    out = subprocess.run(
        [sys.executable, "-m", "latent_gemma_cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.startswith("Usage: lgemma ")
