"""Issue 18: without CSFORECAST_HOME the home is `.csforecast/` in the working directory, created owner-only,
covered by .gitignore; a csforecast.toml in it is read."""
from __future__ import annotations

import stat
from pathlib import Path

from csforecast.config import DEFAULT_HOME, get_settings, reset_settings

REPO = Path(__file__).resolve().parents[1]


def test_the_default_home_is_an_owner_only_dot_folder_in_the_working_directory(tmp_path, monkeypatch):
    for var in ("CSFORECAST_HOME", "CSFORECAST_CONFIG", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_HOME).mkdir(mode=0o700)
    (tmp_path / DEFAULT_HOME / "csforecast.toml").write_text("[serve]\nmax_batch = 7\n")
    reset_settings()
    try:
        s = get_settings()
        assert s.home == tmp_path / ".csforecast"
        assert s.serve.max_batch == 7                                # its csforecast.toml is read
        assert Path(s.tracking_uri.removeprefix("sqlite:///")).is_relative_to(tmp_path / ".csforecast")
        for p in (s.scores_db, s.apikeys_file, s.model_cache):
            assert p.parent == s.home
    finally:
        reset_settings()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".csforecast"]


def test_a_new_default_home_is_created_mode_0700(tmp_path, monkeypatch):
    for var in ("CSFORECAST_HOME", "CSFORECAST_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    reset_settings()
    try:
        home = get_settings().home
    finally:
        reset_settings()
    assert home.is_dir() and stat.S_IMODE(home.stat().st_mode) & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".csforecast"]


def test_gitignore_covers_the_default_home():
    lines = (REPO / ".gitignore").read_text().splitlines()
    assert "/.csforecast/" in lines
