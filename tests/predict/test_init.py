from __future__ import annotations

import clm.predict


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert sorted(clm.predict.__all__) == sorted(
        [
            "BetaGeo",
            "BetaGeoBetaBinom",
            "ConvergenceWarning",
            "GammaGamma",
            "IndependenceCheck",
            "IndependenceWarning",
            "InvalidSummaryError",
            "ModifiedBetaGeo",
            "NotFittedError",
            "ParetoNBD",
            "PredictWarning",
            "ShiftedBetaGeometric",
            "check_independence",
            "compress",
            "customer_lifetime_value",
            "rfm_summary",
        ]
    )
    for name in clm.predict.__all__:
        assert hasattr(clm.predict, name)


def test_predict_imports_nothing_else_from_clm() -> None:
    import pathlib
    import re

    package = pathlib.Path(clm.predict.__file__).parent
    for module in package.glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (clm[\w.]*)", module.read_text(), re.M)
        assert all(name.startswith("clm.predict") for name in imports), module.name
