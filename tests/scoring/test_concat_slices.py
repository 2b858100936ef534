"""The batch's scored slices are joined (``scoring.batch.concat_slices``) exactly as ``pd.concat`` joins them:
same values, dtypes, column order and index, whether an object column is all None, filled, or typed
differently in one slice."""
import numpy as np
import pandas as pd

from csforecast.scoring.batch import concat_slices


def _part(idx, name, csm, drivers):
    return pd.DataFrame({"account_id": [f"A{i}" for i in idx], "name": pd.Series(name, index=idx, dtype=object),
                         "p": np.linspace(0, 1, len(idx)), "csm_id": pd.Series(csm, index=idx, dtype=object),
                         "drivers": pd.Series(drivers, index=idx, dtype=object),
                         "flag": pd.array([None] * len(idx), dtype="string")}, index=idx)


def test_slices_join_as_pandas_joins_them():
    cases = [
        [_part([0, 1], [None, None], [None, None], [["f", 1.0, 0.5], []]), _part([2], [None], [None], [[]])],
        [_part([0, 1], ["Acme", None], ["c1", "c2"], [[], ["g", None, -1.0]]), _part([5], ["Beta"], [None], [[]])],
    ]
    typed = _part([7, 8], ["X", "Y"], [None, None], [[], []])
    typed["csm_id"] = [1.0, 2.0]           # object in one slice, float in the other: pandas decides
    cases.append([_part([0], ["Acme"], ["c1"], [[]]), typed])
    for parts in cases:
        got = concat_slices(parts)
        pd.testing.assert_frame_equal(got, pd.concat(parts))
        assert got["name"].tolist() == pd.concat(parts)["name"].tolist()   # None stays None, not NaN
    one = _part([0], ["Acme"], ["c1"], [[]])
    assert concat_slices([one]) is one
