"""``feature_context=false`` (the reference code's --no-context): the question alone."""

from __future__ import annotations

import pandas as pd

from benchmark.app.run import feature_texts


def test_feature_texts_with_and_without_context():
    q = pd.DataFrame({
        "text": ["Passage one\nQuestion: Who?", "What is 2+2?", "Only a passage"],
        "original_question": ["Who?", "What is 2+2?", None],
    })
    assert feature_texts(q, True) == ["Passage one\nQuestion: Who?", "What is 2+2?", "Only a passage"]
    assert feature_texts(q, False) == ["Who?", "What is 2+2?", ""]


def test_no_context_reaches_the_featuriser(tmp_path):
    from hydra import compose, initialize_config_dir

    from benchmark.app.cli import CONF_DIR, build_spec

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        on = compose(config_name="config", overrides=["features=tfidf"])
        off = compose(config_name="config", overrides=["features=tfidf", "feature_context=false"])
    assert build_spec(on, "knn").use_context is True
    spec = build_spec(off, "knn")
    assert spec.use_context is False and type(spec.featurizer).__name__ == "TfidfFeaturizer"
