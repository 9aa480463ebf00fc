"""The GitHub Actions workflow of docs/how-to/code-review.md works: its shell step previews exactly the changed
scripts, and its github-script step creates, updates or skips the pull-request comment as documented."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from accel_convert.shell.diffing import unified_diff
from tests.transform.cli_helpers import PLAIN, TRAIN, converted, write

DOC = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "code-review.md"


@pytest.fixture(scope="module")
def steps():
    workflow = yaml.safe_load(re.search(r"^```yaml\n(.*?)^```$", DOC.read_text(), re.DOTALL | re.MULTILINE).group(1))
    return {step.get("id") or step.get("name"): step for step in workflow["jobs"]["preview"]["steps"]}


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_preview_step_diffs_the_added_and_modified_scripts_only(tmp_path, steps):
    repo = tmp_path / "repo"
    write(repo / "plain.py", PLAIN)
    write(repo / "old.py", TRAIN)
    write(repo / "untouched.py", TRAIN)
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    base = _git(repo, "rev-parse", "HEAD")
    write(repo / "my script.py", TRAIN)
    write(repo / "plain.py", PLAIN + "print('more')\n")
    (repo / "old.py").unlink()
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pull request")

    step = steps["preview"]
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=repo,
        env={**os.environ, "BASE_SHA": base},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "::warning::" not in done.stdout
    assert (repo / "accel-convert.diff").read_text() == unified_diff(TRAIN, converted(TRAIN), "my script.py")
    assert (repo / "my script.py").read_text() == TRAIN  # nothing written


def test_preview_step_warns_on_a_file_it_cannot_convert(tmp_path, steps):
    repo = tmp_path / "repo"
    write(repo / "README", "x\n")
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    base = _git(repo, "rev-parse", "HEAD")
    write(repo / "broken.py", "import torch\nloss.backward(\n")
    write(repo / "train.py", TRAIN)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pull request")
    done = subprocess.run(
        ["bash", "-e", "-c", steps["preview"]["run"]],
        cwd=repo,
        env={**os.environ, "BASE_SHA": base},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert "::warning::accel-convert could not convert some files" in done.stdout
    assert "broken.py:2:" in done.stderr
    assert (repo / "accel-convert.diff").read_text() == unified_diff(TRAIN, converted(TRAIN), "train.py")


HARNESS = """
const fs = require('fs');
const script = fs.readFileSync(process.argv[2], 'utf8');
const comments = JSON.parse(process.argv[3]);
const calls = [];
const github = {
  paginate: async (method, params) => { calls.push(['list', params]); return comments; },
  rest: { issues: {
    listComments: () => { throw new Error('called through paginate only'); },
    updateComment: async (params) => { calls.push(['update', params]); },
    createComment: async (params) => { calls.push(['create', params]); },
  } },
};
const context = { repo: { owner: 'org', repo: 'proj' }, issue: { number: 7 } };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', script)(require, github, context)
  .then(() => console.log(JSON.stringify(calls)));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the github-script step")
@pytest.mark.parametrize(
    "diff, comments, expected",
    [
        ("--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-x\n+y\n", [], "create"),
        (
            "--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-x\n+y\n",
            [{"id": 1, "body": "unrelated"}, {"id": 5, "body": "<!-- accel-convert-preview -->\nold"}],
            "update",
        ),
        ("", [{"id": 5, "body": "<!-- accel-convert-preview -->\nold"}], "update"),
        ("", [{"id": 1, "body": None}], None),
        ("+" + "x" * 70000 + "\n", [], "create"),
    ],
    ids=["new-comment", "edit-previous", "nothing-left", "nothing-to-say", "truncated"],
)
def test_comment_step_creates_updates_or_skips_the_comment(tmp_path, steps, diff, comments, expected):
    script = steps["Post the preview on the pull request"]["with"]["script"]
    (tmp_path / "script.js").write_text(script)
    (tmp_path / "harness.js").write_text(HARNESS)
    (tmp_path / "accel-convert.diff").write_text(diff)
    done = subprocess.run(
        ["node", "harness.js", "script.js", json.dumps(comments)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    calls = json.loads(done.stdout)
    assert calls[0] == ["list", {"owner": "org", "repo": "proj", "issue_number": 7}]
    writes = calls[1:]
    if expected is None:
        assert writes == []
        return
    assert [kind for kind, _ in writes] == [expected]
    params = writes[0][1]
    if expected == "update":
        assert params["comment_id"] == 5
    else:
        assert params["issue_number"] == 7
    body = params["body"]
    assert body.startswith("<!-- accel-convert-preview -->\n")
    assert len(body) < 65536
    if diff:
        assert "````diff\n" + diff[:1000] in body
        assert body.endswith("````")
        assert ("truncated" in body) == (len(diff) > 60000)
    else:
        assert "nothing to convert" in body
