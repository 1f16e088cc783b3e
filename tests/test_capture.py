"""Output capture pieces: line splitting and record parsing."""

from __future__ import annotations

from smaworker.capture import LineSplitter, parse_record


def test_line_splitter_joins_chunks_and_bounds_lines():
    s = LineSplitter(max_line=8)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde") == [b"abc"]
    assert s.feed(b"fghijklmnop\nq") == [b"defghijk", b"lmnop"]
    assert s.rest() == [b"q"]
    assert s.rest() == []
    assert s.feed(b"x" * 20) == [b"x" * 8, b"x" * 8]
    assert s.rest() == [b"xxxx"]


def test_parse_record_kinds():
    assert parse_record(b'{"stream":"Warning","text":"w"}') == {"stream": "Warning", "text": "w"}
    assert parse_record(b'{"stream":"Output","text":"1","value":[1]}')["value"] == [1]
    assert parse_record(b'{"type":"checkpoint","data":{"i":3}}')["data"] == {"i": 3}
    bad = parse_record(b"not json")
    assert bad["stream"] == "Error" and "Malformed record" in bad["text"]
    unknown = parse_record(b'{"stream":"Shout","text":"x"}')
    assert unknown["stream"] == "Error" and "unknown stream" in unknown["text"]
    assert parse_record(b'{"stream":"Verbose","text":5}')["text"] == "5"
    assert parse_record(b'[1,2]')["stream"] == "Error"
