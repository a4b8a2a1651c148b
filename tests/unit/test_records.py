import pytest

from gramr2_cli.core import records
from gramr2_cli.core.errors import GramrError


def test_make_id_is_stable_and_order_sensitive():
    a = records.make_id("q", "x", "y")
    assert a == records.make_id("q", "x", "y")
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != records.make_id("q", "y", "x")
    # the separator keeps field boundaries apart
    assert records.make_id("ab", "c", "d") != records.make_id("a", "bc", "d")


def test_normalize_fills_defaults_and_keeps_unknown_fields():
    r = records.normalize({"prompt": "q", "response_a": "x", "response_b": "y", "extra_col": 3})
    assert r["id"] == records.make_id("q", "x", "y")
    assert r["label"] is None and r["rationale"] is None and r["source"] == ""
    assert r["meta"] == {"extra": {"extra_col": 3}}


@pytest.mark.parametrize("rec, msg", [
    ({"response_a": "x", "response_b": "y"}, "missing field 'prompt'"),
    ({"prompt": "", "response_a": "x", "response_b": "y"}, "'prompt' is empty"),
    ({"prompt": "q", "response_a": "  ", "response_b": "y"}, "'response_a' is empty"),
    ({"prompt": "q", "response_a": "x", "response_b": 3}, "'response_b' must be a string"),
    ({"prompt": "q", "response_a": "x", "response_b": "y", "label": "a"}, "'label' must be \"A\", \"B\" or null, got 'a'"),
    ({"prompt": "q", "response_a": "x", "response_b": "y", "label": "C"}, "got 'C'"),
    ({"prompt": "q", "response_a": "x", "response_b": "y", "meta": []}, "'meta' must be an object"),
    ("not an object", "expected a JSON object"),
])
def test_normalize_rejects_bad_records_naming_where(rec, msg):
    with pytest.raises(GramrError) as e:
        records.normalize(rec, "f.jsonl line 17")
    assert e.value.message.startswith("f.jsonl line 17: ")
    assert msg in e.value.message


def test_require_label():
    with pytest.raises(GramrError, match="needs labeled pairs"):
        records.normalize({"prompt": "q", "response_a": "x", "response_b": "y"}, require_label=True)


def test_swap_label():
    assert records.swap_label("A") == "B" and records.swap_label("B") == "A" and records.swap_label(None) is None
