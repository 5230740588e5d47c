"""The call cache: keys, persistence across connections, first write wins, stats and clear."""

from synthdistill.teachers.cache import CallCache, call_key


def test_key_changes_with_every_part_but_not_with_dict_order():
    base = call_key("openai", "m", [{"role": "user", "content": "hi"}], {"temperature": 0.5, "top_p": 1}, 0)
    assert base == call_key(
        "openai", "m", [{"content": "hi", "role": "user"}], {"top_p": 1, "temperature": 0.5}, 0
    )
    others = [
        call_key("litellm", "m", [{"role": "user", "content": "hi"}], {"temperature": 0.5, "top_p": 1}, 0),
        call_key("openai", "m2", [{"role": "user", "content": "hi"}], {"temperature": 0.5, "top_p": 1}, 0),
        call_key("openai", "m", [{"role": "user", "content": "hi!"}], {"temperature": 0.5, "top_p": 1}, 0),
        call_key("openai", "m", [{"role": "user", "content": "hi"}], {"temperature": 0.6, "top_p": 1}, 0),
        call_key("openai", "m", [{"role": "user", "content": "hi"}], {"temperature": 0.5, "top_p": 1}, 1),
    ]
    assert len({base, *others}) == 6


def test_entries_survive_reopening_and_first_write_wins(tmp_path):
    path = tmp_path / "calls.sqlite"
    cache = CallCache(path)
    cache.put("k", "openai", "m", {"text": "first"})
    cache.put("k", "openai", "m", {"text": "second"})
    cache.close()
    reopened = CallCache(path)
    assert reopened.get("k") == {"text": "first"}
    assert reopened.get("missing") is None
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_stats_and_clear_by_model(tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    for i in range(3):
        cache.put(f"a{i}", "openai", "m1", {})
    cache.put("b", "transformers", "m2", {})
    assert cache.stats()["entries"] == 4
    assert cache.clear("m1") == 3
    assert cache.stats()["models"] == [{"backend": "transformers", "model": "m2", "entries": 1}]


def test_a_cache_that_is_only_read_makes_no_file(tmp_path):
    path = tmp_path / "cache" / "calls.sqlite"
    cache = CallCache(path)
    assert cache.get("k") is None
    assert cache.stats()["entries"] == 0 and cache.clear() == 0
    cache.close()
    assert not (tmp_path / "cache").exists()
    cache = CallCache(path)
    cache.put("k", "openai", "m", {"text": "stored"})
    assert path.is_file() and cache.get("k") == {"text": "stored"}
