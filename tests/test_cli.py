"""The command line: errors a user can fix print their message and what to do, without a traceback
(``--debug`` shows it); downloads use https; the parameters cells parse cleanly in papermill."""
from __future__ import annotations

import json
import logging
import urllib.error
from pathlib import Path

import pytest

from labkit import cli
from labkit.data import registry

REPO = Path(__file__).resolve().parent.parent


def test_failed_download_prints_what_to_do_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(registry, "_urlopen", offline)
    assert cli.main(["data", "--fetch", "jena_climate"]) == 2
    err = capsys.readouterr().err
    assert "could not download 'jena_climate'" in err and "What to do:" in err
    assert f"put it at {tmp_path / 'jena_climate_2009_2016.csv.zip'}" in err
    assert "Traceback" not in err and "--debug shows the traceback" in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with pytest.raises(registry.DownloadError):  # --debug: the real exception, traceback and all
        cli.main(["data", "--fetch", "jena_climate", "--debug"])


def test_bad_arguments_and_unknown_dataset_are_one_clear_line(capsys):
    assert cli.main(["report", "--only", "42", "--output", "/nonexistent-labkit"]) == 2
    err = capsys.readouterr().err
    assert "no notebook matches ['42']; available: 00_setup_check" in err and "Traceback" not in err
    assert cli.main(["data", "--fetch", "no_such_data"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'no_such_data'; registered:" in err and "KeyError" not in err
    with pytest.raises(SystemExit) as exc:  # argparse's own errors: usage + message, exit status 2
        cli.main(["report", "--profile", "huge"])
    assert exc.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


def test_downloads_use_https_and_keep_their_checks():
    for spec in registry.DATASETS.values():
        assert spec.url.startswith("https://"), spec.url
    # the same objects as the old http:// URLs: storage.googleapis.com serves the download.tensorflow.org bucket
    assert registry.DATASETS["speech_commands_v2"].sha256.startswith("af14739e")
    assert registry.DATASETS["speech_commands_test"].url.endswith("/download.tensorflow.org/data/"
                                                                  "speech_commands_test_set_v0.02.tar.gz")


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_parameters_cells_parse_in_papermill_without_warnings(path, caplog):
    """papermill reads each parameters cell to check the injected names; a line with a second '='
    (e.g. in a comment) made it warn 'Unable to parse line ...' during every report."""
    import papermill

    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = papermill.inspect_notebook(str(path))
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    names = [ln.split("=")[0].strip() for ln in "".join(cell["source"]).splitlines() if "=" in ln.split("#")[0]]
    assert list(found) == names and "PROFILE" in found and "SEED" in found
