"""
API keys: digests in a file or the environment, and the command that makes them; what
``preload serve`` refuses before it listens.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from preload import InputError
from preload.cli import main
from preload.server import KeyRing, _keys, append_key, digest, revoke_keys


def test_a_key_maps_to_its_tenant_by_digest_only(tmp_path: Path) -> None:
    """
    The file holds digests, never keys; a key finds its tenant, another key none.
    """
    path = tmp_path / "keys.jsonl"
    acme, beta = append_key(path, "acme"), append_key(path, "beta")
    text = path.read_text(encoding="utf-8")
    assert acme not in text and digest(acme) in text
    ring = KeyRing.from_file(path)
    assert ("acme", "beta", None) == (
        ring.tenant_of(acme),
        ring.tenant_of(beta),
        ring.tenant_of("x"),
    )
    assert ["acme", "beta"] == ring.tenants
    env = KeyRing.from_env(f"acme:{digest(acme)}, beta:{digest(beta)}")
    assert "beta" == env.tenant_of(beta)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[" * 5_000 + "]" * 5_000, "nested deeper"),
        ("[" + "1" * 5_000 + "]", "a number JSON cannot read"),
        (json.dumps({"tenant": "acme"}), 'expected {"tenant"'),
        (json.dumps({"tenant": "acme", "sha256": "pk_plaintext"}), "64 lowercase hex digits"),
        (json.dumps({"tenant": "a b", "sha256": "0" * 64}), "tenant 'a b'"),
    ],
)
def test_a_bad_keys_line_is_named(tmp_path: Path, line: str, problem: str) -> None:
    """
    A malformed line of a keys file is an InputError naming the file and the line.
    """
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"tenant": "ok", "sha256": "f" * 64}) + "\n" + line + "\n")
    with pytest.raises(InputError, match=problem) as caught:
        KeyRing.from_file(path)
    assert (str(path), 2) == (str(caught.value.path), caught.value.line)


def test_bad_environment_keys_are_named() -> None:
    """
    A malformed pair of PRELOAD_API_KEYS is named by its position.
    """
    with pytest.raises(ValueError, match="pair 2: expected tenant:sha256"):
        KeyRing.from_env(f"acme:{'a' * 64},nonsense")
    with pytest.raises(ValueError, match="holds no key"):
        KeyRing.from_env(" , ")


def test_keys_new_prints_the_key_once_and_stores_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    ``preload keys new`` prints a key that the file's digest maps to the tenant.
    """
    path = tmp_path / "keys.jsonl"
    assert 0 == main(["keys", "new", "--tenant", "acme", "--keys", str(path)])
    key = capsys.readouterr().out.strip()
    assert "acme" == KeyRing.from_file(path).tenant_of(key)
    assert 2 == main(["keys", "new", "--tenant", "no spaces", "--keys", str(path)])
    assert "tenant 'no spaces'" in capsys.readouterr().err


def test_serve_refuses_what_it_cannot_serve_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    No keys, workers without a shared store, a missing file, a tools callable that
    cannot be imported and one whose source names no backend (``backend_name = ""``): each
    one line and exit code 2, before anything listens.
    """
    monkeypatch.delenv("PRELOAD_API_KEYS", raising=False)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # plugins:bad_backend_tools
    keys = tmp_path / "keys.jsonl"
    append_key(keys, "acme")
    cases = [
        ([], "no API keys: pass --keys FILE or set PRELOAD_API_KEYS"),
        (["--keys", str(keys), "--workers", "2"], "--workers 2 needs a store the workers share"),
        (["--keys", str(tmp_path / "nope.jsonl")], "argument --keys"),
        (
            ["--keys", str(keys), "--tools", "no_such_module:tools"],
            "--tools 'no_such_module:tools'",
        ),
        (
            ["--keys", str(keys), "--tools", "plugins:bad_backend_tools"],
            "--tools 'plugins:bad_backend_tools', tenant 'acme': call source 'crm'",
        ),
    ]
    for args, message in cases:
        assert 2 == main(["serve", "--port", "0", *args])
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_keys_revoke_takes_a_tenants_keys_out_and_keeps_the_rest_and_the_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    ``preload keys revoke --tenant`` takes every key of the tenant out, ``--sha256``
    one key; the others stay in order, and the file keeps its mode.
    """
    path = tmp_path / "keys.jsonl"
    old, new, beta = append_key(path, "acme"), append_key(path, "acme"), append_key(path, "beta")
    gamma = append_key(path, "gamma")
    path.chmod(0o600)
    assert 0 == main(["keys", "revoke", "--sha256", digest(old), "--keys", str(path)])
    assert "revoked 1 key of sha256" in capsys.readouterr().out
    ring = KeyRing.from_file(path)
    assert (None, "acme") == (ring.tenant_of(old), ring.tenant_of(new))
    assert 0 == main(["keys", "revoke", "--tenant", "acme", "--keys", str(path)])
    assert "revoked 1 key of tenant acme" in capsys.readouterr().out
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [("beta", digest(beta)), ("gamma", digest(gamma))] == [
        (row["tenant"], row["sha256"]) for row in rows
    ]
    assert 0o600 == path.stat().st_mode & 0o777
    assert [path.name] == [f.name for f in tmp_path.iterdir()]  # no other file left


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--tenant", "nobody"], "no key of tenant 'nobody'"),
        (["--sha256", "0" * 64], "no key of sha256"),
        (["--tenant", "acme"], "revoking would leave no key"),
    ],
)
def test_keys_revoke_refuses_what_matches_nothing_or_leaves_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    """
    A revocation that matches no key, or would leave the file without one (a server
    does not start on it), is an error naming the file, and the file is unchanged.
    """
    path = tmp_path / "keys.jsonl"
    append_key(path, "acme")
    before = path.read_text(encoding="utf-8")
    assert 2 == main(["keys", "revoke", *argv, "--keys", str(path)])
    assert f"error: {path}: {problem}" in capsys.readouterr().err
    assert before == path.read_text(encoding="utf-8")


def test_keys_revoke_names_a_bad_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    A keys file with a bad line is not rewritten: the error names the file and line.
    """
    path = tmp_path / "keys.jsonl"
    append_key(path, "acme")
    append_key(path, "beta")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"tenant": "gamma"}\n')
    before = path.read_text(encoding="utf-8")
    assert 2 == main(["keys", "revoke", "--tenant", "acme", "--keys", str(path)])
    assert f"error: {path}:3: expected" in capsys.readouterr().err
    assert before == path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="one of the two"):
        revoke_keys(path, tenant="acme", sha256=digest("x"))


def test_keys_list_prints_each_keys_tenant_and_digest_never_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    ``preload keys list`` prints a line a key (tenant, digest) in the file's order and
    the count; a missing file is an error naming it.
    """
    path = tmp_path / "keys.jsonl"
    made = [(t, append_key(path, t)) for t in ("acme", "beta", "acme")]
    assert 0 == main(["keys", "list", "--keys", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert [[t, digest(k)] for t, k in made] == [line.split() for line in lines[1:-1]]
    assert f"3 keys of 2 tenants in {path}" == lines[-1]
    assert not any(k in line for _, k in made for line in lines)
    assert 2 == main(["keys", "list", "--keys", str(tmp_path / "nope.jsonl")])
    assert "nope.jsonl: cannot read" in capsys.readouterr().err


def test_a_key_made_during_a_revocation_waits_for_it_and_lands_in_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    ``keys new`` while a revocation holds the keys file waits for it (it says so), then
    appends to the file the revocation put in place, not to the one it replaced: two
    key commands at once lose neither's change.
    """
    path = tmp_path / "keys.jsonl"
    revoked, kept = append_key(path, "acme"), append_key(path, "beta")
    waiting = threading.Event()
    monkeypatch.setattr(_keys, "_waiting", lambda _: waiting.set())
    made: list[str] = []
    with _keys._locked(path, "r"):  # a revocation under way
        worker = threading.Thread(target=lambda: made.append(append_key(path, "gamma")))
        worker.start()
        assert waiting.wait(30)
        assert not made
        _keys._rewrite_without(path, "acme", None)  # the file replaced meanwhile
    worker.join(30)
    ring = KeyRing.from_file(path)
    assert [None, "beta", "gamma"] == [ring.tenant_of(k) for k in (revoked, kept, made[0])]
