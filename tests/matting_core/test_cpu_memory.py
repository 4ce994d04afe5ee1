import json
import os
import subprocess
import sys

from matting_core.cpu_memory import CPU_ALLOCATOR_ENV, missing_allocator_env

SCRIPT = """
import json, os, sys
from matting_core.cpu_memory import CPU_ALLOCATOR_ENV, restart_with_cpu_allocator
print("start", flush=True)
restart_with_cpu_allocator()
print(json.dumps({"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in CPU_ALLOCATOR_ENV}}))
"""


def _run(tmp_path, env):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script), "--minutes", "2", "two words"], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return out, json.loads(out[-1])


def test_missing_settings_are_only_those_not_given():
    assert missing_allocator_env({}) == CPU_ALLOCATOR_ENV
    given = {"THP_MEM_ALLOC_ENABLE": "0", "PATH": "/bin"}
    missing = missing_allocator_env(given)
    assert "THP_MEM_ALLOC_ENABLE" not in missing and set(missing) == set(CPU_ALLOCATOR_ENV) - {"THP_MEM_ALLOC_ENABLE"}


def test_the_script_restarts_once_with_the_settings_and_its_arguments(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in CPU_ALLOCATOR_ENV}
    lines, got = _run(tmp_path, env)
    assert lines.count("start") == 2  # the first process printed, then was replaced once, not again
    assert got["argv"] == ["--minutes", "2", "two words"]
    assert got["env"] == CPU_ALLOCATOR_ENV


def test_a_user_setting_is_kept_and_nothing_restarts_when_all_are_set(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k not in CPU_ALLOCATOR_ENV}, **CPU_ALLOCATOR_ENV,
           "THP_MEM_ALLOC_ENABLE": "0"}
    lines, got = _run(tmp_path, env)
    assert lines.count("start") == 1
    assert got["env"]["THP_MEM_ALLOC_ENABLE"] == "0"
