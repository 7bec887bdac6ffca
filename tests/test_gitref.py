"""Specs from git: only committed content is exported; refs resolve, move and fail clearly."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from reconciler.errors import ConfigError
from reconciler.gitref import RefWatcher, Snapshot, commit_of, export, extract_tar, resolve

ROOT = Path(__file__).resolve().parents[1]
SPEC = "apiVersion: reconciler/v1\nkind: FineTuneJob\nmetadata: {{name: {name}}}\n"

# hermetic git: no user or system config, a fixed identity
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}

pytestmark = pytest.mark.process  # git, as a subprocess


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=GIT_ENV, check=True
    )
    return out.stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    top = tmp_path / "repo"
    top.mkdir()
    git(top, "init", "-q", "-b", "main")
    write(top / "README.md", "not a spec\n")
    return top


def files_under(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_export_has_only_committed_content(repo: Path) -> None:
    specs = repo / "specs"
    write(specs / "bot.yaml", SPEC.format(name="bot"))
    write(specs / "data" / "bot.jsonl", '{"text": "committed"}\n')
    sha = commit_all(repo, "specs")
    write(specs / "bot.yaml", SPEC.format(name="bot-edited"))  # uncommitted edit
    write(specs / "new.yaml", SPEC.format(name="new"))  # untracked spec
    write(specs / "data" / "bot.jsonl", '{"text": "dirty"}\n')

    with export(specs, "HEAD") as snap:
        assert isinstance(snap, Snapshot)
        assert (snap.ref, snap.commit) == ("HEAD", sha)
        assert snap.specs_dir == snap.root / "specs"
        assert snap.repo == repo.resolve()
        assert files_under(snap.root) == {
            "specs/bot.yaml": SPEC.format(name="bot"),
            "specs/data/bot.jsonl": '{"text": "committed"}\n',
        }
        assert commit_of(snap.specs_dir / "bot.yaml", snap) == (sha, "specs/bot.yaml")
        assert snap.label == f"HEAD ({sha[:12]})"
        root = snap.root
    assert not root.exists()


def test_export_by_branch_sha_and_tag_sees_that_commit(repo: Path) -> None:
    specs = repo / "specs"
    write(specs / "a.yaml", SPEC.format(name="a"))
    first = commit_all(repo, "a")
    git(repo, "tag", "v1")
    write(specs / "b.yaml", SPEC.format(name="b"))
    second = commit_all(repo, "b")
    for ref, sha, names in [
        ("v1", first, {"specs/a.yaml"}),
        (first[:10], first, {"specs/a.yaml"}),
        ("main", second, {"specs/a.yaml", "specs/b.yaml"}),
        ("HEAD~1", first, {"specs/a.yaml"}),
    ]:
        with export(specs, ref) as snap:
            assert snap.commit == sha
            assert set(files_under(snap.root)) == names


def test_nested_specs_folder_keeps_its_layout(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = repo / "ml" / "fine-tunes" / "specs"
    write(specs / "team" / "bot.yaml", SPEC.format(name="bot"))
    write(specs / "data" / "x.jsonl", "{}\n")
    write(repo / "ml" / "other.yaml", SPEC.format(name="outside"))  # not in the specs folder
    sha = commit_all(repo, "nested")
    with export(specs, "main") as snap:
        assert snap.specs_dir == snap.root / "ml" / "fine-tunes" / "specs"
        assert set(files_under(snap.root)) == {
            "ml/fine-tunes/specs/team/bot.yaml",
            "ml/fine-tunes/specs/data/x.jsonl",
        }
        spec = snap.specs_dir / "team" / "bot.yaml"
        assert commit_of(spec, snap) == (sha, "ml/fine-tunes/specs/team/bot.yaml")
    # from a subfolder of the working tree, and with a relative path
    monkeypatch.chdir(repo / "ml")
    with export(Path("fine-tunes/specs"), "main") as snap:
        assert snap.specs_dir == snap.root / "ml" / "fine-tunes" / "specs"


def test_a_folder_named_like_a_glob_is_taken_literally(repo: Path) -> None:
    write(repo / "s*" / "a.yaml", SPEC.format(name="a"))
    write(repo / "sother" / "b.yaml", SPEC.format(name="b"))
    commit_all(repo, "globs")
    with export(repo / "s*", "HEAD") as snap:
        assert set(files_under(snap.root)) == {"s*/a.yaml"}


def test_specs_folder_as_repository_root(repo: Path) -> None:
    write(repo / "bot.yaml", SPEC.format(name="bot"))
    sha = commit_all(repo, "root")
    with export(repo, "HEAD") as snap:
        assert snap.specs_dir == snap.root
        assert set(files_under(snap.root)) == {"README.md", "bot.yaml"}
        assert commit_of(snap.root / "bot.yaml", snap) == (sha, "bot.yaml")


def test_specs_folder_deleted_in_the_working_tree_still_exports(repo: Path) -> None:
    specs = repo / "specs"
    write(specs / "bot.yaml", SPEC.format(name="bot"))
    commit_all(repo, "specs")
    (specs / "bot.yaml").unlink()
    specs.rmdir()
    with export(specs, "HEAD") as snap:
        assert set(files_under(snap.root)) == {"specs/bot.yaml"}


def test_ref_at_which_the_specs_folder_did_not_exist(repo: Path) -> None:
    before = commit_all(repo, "readme only")
    write(repo / "specs" / "bot.yaml", SPEC.format(name="bot"))
    commit_all(repo, "specs")
    with pytest.raises(ConfigError) as err:
        export(repo / "specs", before[:8])
    assert str(err.value) == f"specs folder specs/ does not exist at {before[:8]} ({before[:12]})"


def test_a_file_where_the_specs_folder_should_be_is_not_a_folder(repo: Path) -> None:
    write(repo / "specs", "a file\n")
    sha = commit_all(repo, "file")
    with pytest.raises(
        ConfigError, match=rf"specs folder specs/ does not exist at HEAD \({sha[:12]}"
    ):
        export(repo / "specs", "HEAD")


def test_resolve_errors_are_one_line(repo: Path, tmp_path: Path) -> None:
    sha = commit_all(repo, "init")
    assert resolve(repo, "HEAD") == sha
    assert resolve(repo, "main") == sha
    cases = [
        (repo, "origin/main", f"--git-ref origin/main: no such commit in {repo}"),
        (repo, "deadbeef", f"--git-ref deadbeef: no such commit in {repo}"),
        (repo, "HEAD:README.md", f"--git-ref HEAD:README.md: no such commit in {repo}"),
        (tmp_path, "HEAD", f"--git-ref HEAD: {tmp_path} is not inside a git repository"),
        (repo, "--output=x", "--git-ref '--output=x': not a git ref or commit"),
        (repo, "", "--git-ref '': not a git ref or commit"),
    ]
    for folder, ref, message in cases:
        with pytest.raises(ConfigError) as err:
            resolve(folder, ref)
        assert str(err.value) == message
        assert "\n" not in str(err.value)


def test_export_outside_a_repository(tmp_path: Path) -> None:
    specs = tmp_path / "plain" / "specs"
    specs.mkdir(parents=True)
    with pytest.raises(ConfigError, match="is not inside a git working tree"):
        export(specs, "HEAD")


def test_ref_watcher_notices_a_moved_ref(repo: Path) -> None:
    first = commit_all(repo, "one")
    watcher = RefWatcher(repo, "main")
    assert watcher.current() == first
    assert watcher.moved() is None
    write(repo / "specs" / "a.yaml", SPEC.format(name="a"))
    second = commit_all(repo, "two")
    assert watcher.current() == second  # current() looks, but does not consume the move
    assert watcher.moved() == second
    assert watcher.moved() is None
    git(repo, "update-ref", "refs/heads/main", first)  # as a fetch or a reset would
    assert watcher.moved() == first
    assert watcher.moved() is None


def test_watcher_and_export_agree_on_the_noticed_commit(repo: Path) -> None:
    write(repo / "specs" / "a.yaml", SPEC.format(name="a"))
    first = commit_all(repo, "one")
    watcher = RefWatcher(repo, "main")
    write(repo / "specs" / "b.yaml", SPEC.format(name="b"))
    commit_all(repo, "two")
    # the ref moved after the watcher looked: the snapshot is still what it saw
    with export(repo / "specs", "main", commit=watcher.last) as snap:
        assert (snap.ref, snap.commit) == ("main", first)
        assert set(files_under(snap.specs_dir)) == {"a.yaml"}


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    buf.seek(0)
    return buf


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry("specs/../../evil.yaml"), "unsafe path in archive: 'specs/../../evil.yaml'"),
        (entry("specs/a/../b.yaml"), "unsafe path in archive: 'specs/a/../b.yaml'"),
        (entry("/etc/evil.yaml"), "unsafe path in archive: '/etc/evil.yaml'"),
        (entry("specs/link", tarfile.SYMTYPE, "../../outside"), "unsafe entry in archive"),
        (entry("specs/abs", tarfile.SYMTYPE, "/etc/passwd"), "unsafe entry in archive"),
        (entry("specs/hard", tarfile.LNKTYPE, "../outside"), "unsafe entry in archive"),
    ],
)
def test_unsafe_archives_are_refused(tmp_path: Path, bad: tarfile.TarInfo, message: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    stream = tar_of((entry("specs/ok.yaml"), b"ok\n"), (bad, b"evil\n"))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        extract_tar(stream, dest)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "evil.yaml").exists()
    assert not (tmp_path / "outside").exists()


def test_a_safe_archive_extracts(tmp_path: Path) -> None:
    stream = tar_of(
        (entry("specs", tarfile.DIRTYPE), b""),
        (entry("specs/ok.yaml"), b"ok\n"),
        (entry("specs/same", tarfile.SYMTYPE, "ok.yaml"), b""),
    )
    extract_tar(stream, tmp_path)
    assert (tmp_path / "specs" / "same").read_text() == "ok\n"


def test_garbage_is_an_unreadable_archive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unreadable archive"):
        extract_tar(io.BytesIO(b"not a tar at all" * 64), tmp_path)


def test_ci_examples_are_valid_yaml() -> None:
    ci = ROOT / "examples" / "ci"
    workflow = yaml.safe_load((ci / "github-actions.yml").read_text())
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on"
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"pull_request", "push"}
    assert triggers["push"]["branches"] == ["main"]
    assert set(workflow["jobs"]) == {"plan", "apply"}
    assert workflow["jobs"]["apply"]["concurrency"]["cancel-in-progress"] is False
    apply_steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["apply"]["steps"])
    assert "reconciler apply --yes --git-ref" in apply_steps
    plan_steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["plan"]["steps"])
    assert "--format markdown" in plan_steps and "--detailed-exitcode" in plan_steps
    hooks = yaml.safe_load((ci / ".pre-commit-config.yaml").read_text())
    (hook,) = hooks["repos"][0]["hooks"]
    assert hooks["repos"][0]["repo"] == "local"
    assert hook["entry"].startswith("reconciler") and "validate" in hook["entry"]
    assert hook["files"].startswith("^specs/")
