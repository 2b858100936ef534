"""GET /v1/models and the account responses say what data each version was trained on and whether a score
came from a small-book fallback (docs/operations.md). Reuses the session's real server and trained home."""
import pytest

pytestmark = pytest.mark.slow


def test_models_show_data_profile_hash_decision_and_fallback(api):
    with api.client() as c:
        fams = c.get("/v1/models").json()["families"]
        account = c.get("/v1/accounts/A00001").json()
    assert fams
    for fam, info in fams.items():
        assert info["data_hash"], fam
        profile = info["data_profile"]
        assert profile["tables"]["accounts"]["rows"] > 0 and profile["tables"]["contracts"]["accounts"] > 0
        assert 0 < profile["label"]["base_rate"] < 1
        served = next(v for v in info["versions"] if v["version"] == info["served_version"])
        assert served["data_hash"] == info["data_hash"] and served["data_profile"] == profile
        assert served["decision"] == "promoted" and "champion" in served["aliases"]
        assert served["fallback"] == info["fallback"]
    # an account's scores carry the fallback flag of exactly the families served by one
    assert account["fallback"] == {f: i["fallback"] for f, i in fams.items() if i["fallback"] and f != "survival"}
