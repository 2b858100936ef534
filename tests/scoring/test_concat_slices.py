"""The batch's slices are put together as ``pd.concat`` would, with all-None account columns re-added."""
import numpy as np
import pandas as pd

from csforecast.scoring.batch import _concat_slices


def _part(idx, name, csm):
    return pd.DataFrame({"account_id": [f"A{i}" for i in idx], "name": pd.Series(name, index=idx, dtype=object),
                         "csm_id": pd.Series(csm, index=idx, dtype=object), "p": np.linspace(0, 1, len(idx))},
                        index=idx)


def test_all_none_columns_come_back_in_place_as_none():
    parts = [_part([0, 1], [None, None], [None, None]), _part([2], [None], [None])]
    out = _concat_slices(parts)
    assert list(out.columns) == ["account_id", "name", "csm_id", "p"]
    assert list(out.index) == [0, 1, 2]
    assert out["name"].dtype == object and out["name"].tolist() == [None, None, None]
    assert out["csm_id"].tolist() == [None, None, None]
    pd.testing.assert_series_equal(out["p"], pd.concat(parts)["p"])


def test_filled_columns_are_concatenated_as_pandas_does():
    parts = [_part([0, 1], ["Acme", None], ["c1", "c2"]), _part([2], ["Beta"], [None])]
    pd.testing.assert_frame_equal(_concat_slices(parts), pd.concat(parts))
