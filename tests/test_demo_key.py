"""Issue 20: the demo prints a ready-to-paste read key for its home; kept owner-only, replaced once revoked."""
from __future__ import annotations

import stat


def test_demo_read_key_is_created_once_kept_owner_only_and_replaced_when_revoked(isolated_home):
    from csforecast.api.auth import KeyStore
    from csforecast.cli.demo import demo_read_key
    from csforecast.config import get_settings

    key, path, created = demo_read_key(isolated_home)
    keys = KeyStore(get_settings().apikeys_file)
    p = keys.verify(key)
    assert created and p is not None and p.scope == "read"
    assert path == isolated_home / "demo" / "read-key" and path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r["name"] for r in keys.list()] == ["demo"]

    again, _, created = demo_read_key(isolated_home)
    assert again == key and not created and len(keys.list()) == 1     # no new key per run

    keys.revoke(p.key_id)
    new, _, created = demo_read_key(isolated_home)
    assert created and new != key and keys.verify(new) is not None and keys.verify(key) is None


def test_where_to_look_prints_the_dashboard_url_and_the_key(isolated_home, capsys, monkeypatch):
    from csforecast.cli.demo import print_where_to_look

    monkeypatch.delenv("CSFORECAST_MLFLOW_UI", raising=False)
    key = print_where_to_look(isolated_home, "sqlite:///x/mlflow.db", "127.0.0.1", 8123, isolated_home / "d", True)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "http://127.0.0.1:8123/ui/" in text and key in shown.out
    assert "http://127.0.0.1:8123/docs" in text
    assert "mlflow ui --backend-store-uri sqlite:///x/mlflow.db --host 127.0.0.1 --port 5000" in text
