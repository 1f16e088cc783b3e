"""docker/Dockerfile's stages, its build context (.dockerignore) and the PSScriptAnalyzer
settings its test stage uses, read as text: there is no Docker engine here (the compose file
has tests/test_compose.py)."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def dockerfile_stages() -> dict[str, tuple[str, str]]:
    """docker/Dockerfile's stages: name -> (base, text)."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    starts = list(re.finditer(r"^FROM (\S+) AS (\w+)$", text, re.M))
    return {m.group(2): (m.group(1), text[m.end():following.start() if following else None])
            for m, following in zip(starts, [*starts[1:], None], strict=True)}


def test_dockerfile_test_stage_runs_the_pwsh_tests_and_the_analyzer() -> None:
    stages = dockerfile_stages()
    assert list(stages) == ["web", "worker", "test"]
    base, test = stages["test"]
    assert base == "worker"  # the image with pwsh
    assert "install -y --no-install-recommends redis-server" in test
    assert re.search(r"^ARG PSSCRIPTANALYZER_VERSION=\d+\.\d+\.\d+$", test, re.M)
    assert "Install-Module -Name PSScriptAnalyzer -RequiredVersion ${PSSCRIPTANALYZER_VERSION}" \
        in test
    assert 'pip install ".[dev]"' in test
    assert "for folder in smaworker/runtime smacli/powershell; do" in test
    assert ("Invoke-ScriptAnalyzer -Path $folder -Settings ./PSScriptAnalyzerSettings.psd1 "
            "-Recurse -EnableExit") in test
    assert "|| exit 1" in test
    assert "python -m pytest -m pwsh" in test
    # the tests run as sma: a worker that is root wants bubblewrap, which a build cannot give
    assert test.index("USER sma") < test.index("python -m pytest")
    copied = {name: re.findall(r"^COPY (\S+) ", stages[name][1], re.M) for name in stages}
    assert {"tests", "bench", "PSScriptAnalyzerSettings.psd1"} <= set(copied["test"])
    assert "tests" not in copied["web"] + copied["worker"]  # only the test stage has them


def test_dockerignore_lets_in_what_the_stages_copy_and_keeps_secrets_out() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"  # an allow-list: new files stay out until a stage needs them
    allowed = {line[1:] for line in lines if line.startswith("!")}
    copied = set()
    for _, text in dockerfile_stages().values():
        for sources in re.findall(r"^COPY (.+) \S+$", text, re.M):
            copied.update(sources.split())
    assert copied <= allowed
    for path in copied:
        assert (ROOT / path).exists(), path
    assert not allowed & {".env", ".git", ".venv", ".ci"}
    assert "**/__pycache__" in lines


def test_analyzer_settings_say_why_each_rule_is_left_out() -> None:
    text = (ROOT / "PSScriptAnalyzerSettings.psd1").read_text(encoding="ascii")
    assert re.search(r"Severity\s*=\s*@\('Error', 'Warning'\)", text)
    assert "IncludeRules" not in text  # every default rule runs
    block = re.search(r"ExcludeRules\s*=\s*@\((.*?)\n    \)", text, re.S).group(1)
    lines = [line.strip() for line in block.splitlines()]
    rules = [i for i, line in enumerate(lines) if line.startswith("'")]
    assert rules
    for i in rules:
        assert re.fullmatch(r"'PS\w+'", lines[i]), lines[i]
        assert lines[i - 1].startswith("#"), f"{lines[i]} is left out without a reason"
