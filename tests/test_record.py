"""The case record: the one typed shape every reporter reads, written through the item's kick_* properties."""

import json

import pytest

from pytest_kick import report
from pytest_kick.record import CaseRecord, Verdict, has, put


class Node:
    def __init__(self):
        self.user_properties = []


def test_fields_put_on_an_item_come_back_typed():
    node = Node()
    put(node, task="mmlu", model="m", compressor="magnitude", ratio="0.5")
    put(node, verdict=Verdict.NOT_MATCHING, dense=0.5, compressed=0.3, lost=4)
    assert ("kick_verdict", "not matching") in node.user_properties  # plain text: JUnit and xdist carry it
    record = CaseRecord.from_properties(node.user_properties)
    assert record.verdict is Verdict.NOT_MATCHING and record.label == "magnitude@0.5" and not record.is_dense
    assert (record.dense, record.compressed, record.lost, record.kept) == (0.5, 0.3, 4, None)
    assert has(node.user_properties, "verdict", Verdict.NOT_MATCHING)


def test_a_misspelt_field_is_refused_where_it_is_written():
    with pytest.raises(AttributeError, match="CaseRecord has no field 'verdit'"):
        put(Node(), verdit=Verdict.MATCHING)


def test_an_item_that_is_not_a_kick_case_has_no_record():
    assert CaseRecord.from_properties([("other", 1)]) is None


def test_a_search_item_is_told_from_a_grid_case_and_the_dense_case():
    assert CaseRecord("t", "m", "wanda").is_search
    assert not CaseRecord("t", "m", "wanda", "0.5").is_search and not CaseRecord("t", "m", "dense").is_search


def test_the_json_report_writes_every_field_and_says_its_format(tmp_path):
    path = tmp_path / "r.json"
    report.write_json([CaseRecord("t", "m", "dense", verdict="sane", dense=0.5, drop=float("nan"))], path, {"a": 1})
    body = json.loads(path.read_text())
    assert body["meta"] == {"format": report.FORMAT, "a": 1}
    [case] = body["cases"]
    assert case["verdict"] == "sane" and case["drop"] is None and case["compressed"] is None
    assert set(case) == set(CaseRecord.__dataclass_fields__)
