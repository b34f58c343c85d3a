"""The benchmark scripts' one writer of reports: replace, or append to runs already collected."""

from kgpu._bench import publish


def test_publish_replaces_or_appends(tmp_path, capsys):
    out = tmp_path / "results.md"
    publish("first", str(out))
    publish("second", str(out))
    assert out.read_text() == "second\n"
    publish("third", str(out), append=True)
    assert out.read_text() == "second\nthird\n"
    publish("fresh", str(tmp_path / "new.md"), append=True)
    assert (tmp_path / "new.md").read_text() == "fresh\n"
    assert capsys.readouterr().out.split() == ["first", "second", "third", "fresh"]
